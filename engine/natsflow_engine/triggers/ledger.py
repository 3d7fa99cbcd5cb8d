"""Launching instances exactly once, and telling a new launch from a duplicate.

A launch with an idempotency key gets the deterministic instance id
:func:`natsflow_engine.layout.idempotent_instance_id` and the command id ``launch.<iid>``, which
is also its ``Nats-Msg-Id``. Three layers keep it exactly once:

1. JetStream drops a republished launch inside the command stream's duplicate window;
2. beyond the window the engine creates the instance record only if absent (a late duplicate
   finds the record and is acknowledged without effect);
3. to *count* duplicates, :class:`LaunchLedger` creates a small marker per instance id in the
   ``nf_launches`` bucket (create-if-absent; kept for ``retention``). A marker that exists with
   another origin means a duplicate; the same origin means our own retry of one message.

The launch is always published before the marker is written, so a crash between the two never
loses a launch (it may count one duplicate too few or too many).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from natsflow_engine import layout
from natsflow_engine.runtime import records as r
from natsflow_engine.store import open_or_create_bucket, publish_command

__all__ = ["BUCKET_LAUNCHES", "DEFAULT_RETENTION", "LaunchLedger", "LaunchMarker"]

log = logging.getLogger(__name__)

BUCKET_LAUNCHES = layout.BUCKET_LAUNCHES
"""Markers of launched instance ids, key ``<tenant>.<instance>``."""
DEFAULT_RETENTION = 7 * 24 * 3600.0
"""Seconds a launch marker is kept (duplicates older than this are still harmless, not counted)."""


class LaunchMarker(msgspec.Struct, kw_only=True, omit_defaults=True):
    v: int = 1
    origin: str
    """Where the launch came from: ``<stream>:<sequence>`` for a trigger, ``api:<nonce>``."""
    process_id: str = ""
    at: str = ""


_marker_decoder = msgspec.json.Decoder(LaunchMarker)


class LaunchLedger:
    """Publishes launches and records a marker per instance id to count duplicates."""

    def __init__(self, js: JetStreamContext, kv: KeyValue) -> None:
        self.js = js
        self.kv = kv

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        *,
        retention: float = DEFAULT_RETENTION,
        replicas: int = 1,
        memory: bool = False,
    ) -> LaunchLedger:
        kv = await open_or_create_bucket(
            js,
            KeyValueConfig(
                bucket=BUCKET_LAUNCHES,
                history=1,
                ttl=retention,
                replicas=replicas,
                storage=StorageType.MEMORY if memory else StorageType.FILE,
                description="natsflow: launched instance ids, to count duplicate launches",
            ),
        )
        return cls(js, kv)

    async def launch(self, cmd: r.Launch, origin: str, *, data: bytes | None = None) -> bool:
        """Publish ``cmd`` (awaiting JetStream's acknowledgement), then write the marker.

        Returns True for a new launch, False for a duplicate (the instance was launched before
        by another message or request). Raises when the publish is not acknowledged: the
        caller must not acknowledge its source then.
        """
        ack = await publish_command(self.js, cmd, data=data)
        key = layout.instance_key(cmd.tenant, cmd.instance)
        marker = LaunchMarker(origin=origin, process_id=cmd.process_id, at=datetime.now(UTC).isoformat())
        try:
            await self.kv.create(key, msgspec.json.encode(marker))
            return True
        except KeyWrongLastSequenceError:
            pass
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:  # expired in between: the launch is long gone
            return not ack.duplicate
        try:
            previous = _marker_decoder.decode(entry.value or b"")
        except msgspec.DecodeError:
            return False
        return previous.origin == origin
