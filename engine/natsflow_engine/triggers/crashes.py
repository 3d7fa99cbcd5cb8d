"""Messages no trigger server lived to handle: dead-lettered from JetStream's advisory.

A message on which the trigger server dies every time (the process is killed, runs out of
memory, or hangs past the ack wait while handling it) never reaches the runner's own
dead-lettering: it is delivered again until the consumer's ``max_deliver``, and then the server
stops delivering it. JetStream then publishes a max-deliveries advisory
(``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>``). nats-server 2.15 sends it
when the consumer is next asked for messages (measured: none while nobody pulls), so a runner
subscribes to it before it starts pulling, and the surviving or restarted replica that pulls
next receives it. Replicas share the subscription in the queue group
:data:`ADVISORY_QUEUE`, so one of them dead-letters the message (idempotent per stream
sequence in any case), with the reason ``gave up after <n> deliveries: ...``, and counts it
as rejected. The message stays in its stream (which may be shared with other consumers).
"""

from __future__ import annotations

import json
import logging

from nats.aio.client import Client

from natsflow_engine.triggers.deadletter import publish_dead_letter

__all__ = ["ADVISORY_QUEUE", "dead_letter_unhandled", "max_deliveries_subject"]

log = logging.getLogger(__name__)

ADVISORY_QUEUE = "natsflow-triggers"
"""Queue group in which trigger-server replicas share the max-deliveries advisories."""


def max_deliveries_subject(stream: str, consumer: str) -> str:
    """The advisory of messages of ``consumer`` delivered as often as it allows."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"


async def dead_letter_unhandled(
    nc: Client, stream: str, advisory: bytes, *, dlq: str, tenant: str, trigger: str
) -> str | None:
    """Dead-letter the message an advisory names; its reason, or None when there is nothing to
    do (an unreadable advisory, or the message is gone from its stream)."""
    try:
        document = json.loads(advisory)
        sequence = int(document["stream_seq"])
        deliveries = int(document.get("deliveries", 0))
        stored = await nc.jetstream().get_msg(stream, sequence)
    except Exception as exc:  # malformed, or removed meanwhile (age, purge)
        log.info("max-deliveries advisory of %s not actionable: %s", stream, exc)
        return None
    reason = (
        f"gave up after {deliveries} deliveries: the trigger server stopped on it each time "
        "(crashed, was killed or timed out) before it could launch or dead-letter it"
    )
    await publish_dead_letter(
        nc,
        dlq,
        stored.data or b"",
        stored.headers,
        reason=reason,
        tenant=tenant,
        trigger=trigger,
        source_subject=stored.subject or "",
        origin=f"{stream}:{sequence}",
    )
    return reason
