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
    """Live keys of ``bucket`` matching the subject-style ``pattern``, each once.

    A key rewritten while the listing runs is still listed (KV keeps one revision per key, so
    its old message is gone and its new one arrives after the initial set: the listing reads
    until nothing is pending, within a budget)."""
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
    live: dict[str, None] = {}
    try:
        remaining = info.num_pending or 0
        if remaining == 0:
            return []
        budget = 2 * remaining + 10 * batch  # a bound when keys are written faster than we read
        psub = await js.pull_subscribe_bind(durable=info.name, stream=stream)
        try:
            while remaining > 0 and budget > 0:
                for msg in await psub.fetch(min(batch, remaining), timeout=5.0):
                    remaining, budget = msg.metadata.num_pending, budget - 1
                    key = msg.subject[len(prefix) :]
                    headers = msg.headers or {}
                    if headers.get("KV-Operation") in _DELETED or "Nats-Marker-Reason" in headers:
                        live.pop(key, None)
                    else:
                        live[key] = None
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, info.name)
    return list(live)
