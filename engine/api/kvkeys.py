"""Listing KV keys exactly, with an ephemeral *pull* consumer.

nats-py's ``kv.watch()`` (which :func:`natsflow.engine.natsutil.list_keys` and ``kv.keys()``
use) decides "no more keys" from consumer info and a delivered counter; when the server has
pushed messages the client has not processed yet, it reports an empty or partial list (seen
under load: 0 keys of 700). A pull consumer delivers nothing before it is asked, and every
message carries the exact number still pending, so the end is known without a race.
"""

from __future__ import annotations

import contextlib

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

__all__ = ["list_kv_keys"]

_DELETED = ("DEL", "PURGE")


async def list_kv_keys(
    js: JetStreamContext, bucket: str, pattern: str = ">", *, batch: int = 1000
) -> list[str]:
    """Live keys of ``bucket`` matching the subject-style ``pattern``, in stream order."""
    stream, prefix = f"KV_{bucket}", f"$KV.{bucket}."
    info = await js.add_consumer(
        stream,
        ConsumerConfig(
            filter_subject=prefix + pattern,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            ack_policy=AckPolicy.NONE,
            headers_only=True,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        ),
    )
    assert info.name is not None
    keys: list[str] = []
    try:
        remaining = info.num_pending or 0
        if remaining == 0:
            return keys
        psub = await js.pull_subscribe_bind(durable=info.name, stream=stream)
        try:
            while remaining > 0:
                for msg in await psub.fetch(min(batch, remaining), timeout=5.0):
                    remaining = msg.metadata.num_pending
                    headers = msg.headers or {}
                    if headers.get("KV-Operation") in _DELETED or "Nats-Marker-Reason" in headers:
                        continue
                    keys.append(msg.subject[len(prefix) :])
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, info.name)
    return keys
