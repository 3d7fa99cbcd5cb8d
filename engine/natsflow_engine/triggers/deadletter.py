"""Dead letters: messages a trigger cannot launch from, kept with the reason.

A rejected message is republished, with its original payload and headers, to the trigger's
``dead_letter_subject`` or ``nf.dlq.<tenant>.<trigger token>``, adding headers:

``Natsflow-Dead-Letter-Reason``  why (``payload: ...``, ``mapping: ...``, ``too_large: ...``, ``invalid: ...``)
``Natsflow-Trigger``             the trigger's name
``Natsflow-Tenant``              the trigger's tenant
``Natsflow-Source-Subject``      the subject the message arrived on
``Natsflow-Source-Sequence``     ``<stream>:<sequence>`` of the original message

The trigger server keeps default dead letters in the ``NF_DLQ`` stream (``nf.dlq.>``, 7 days).
A custom subject is published to JetStream; when no stream captures it, the dead letter goes to
the default subject in ``NF_DLQ`` instead, with the header ``Natsflow-Dead-Letter-Subject``
naming the subject it was meant for, and a warning is logged. When neither is stored the
publish fails and the message stays with the trigger's consumer: a dead letter is never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.js.errors import NoStreamResponseError

from natsflow_engine import layout
from natsflow_engine.runtime.setup import ensure_dlq_stream

__all__ = ["DLQ_STREAM", "dead_letter_subject", "ensure_dlq_stream", "publish_dead_letter"]

log = logging.getLogger(__name__)

DLQ_STREAM = layout.STREAM_DEAD_LETTERS
_DROP = (
    "Nats-Msg-Id",
    "Nats-Expected-Stream",
    "Nats-Expected-Last-Sequence",
    "Nats-Expected-Last-Msg-Id",
    "Nats-Expected-Last-Subject-Sequence",
    "Nats-TTL",
    "Nats-Schedule",
    "Nats-Schedule-Target",
)


def dead_letter_subject(tenant: str, trigger: str, configured: str | None) -> str:
    return configured or layout.dead_letter_subject(tenant, trigger)


def _clean(value: str) -> str:
    return " ".join(value.split())[:1000]


async def publish_dead_letter(
    nc: Client,
    subject: str,
    data: bytes,
    headers: Mapping[str, str] | None,
    *,
    reason: str,
    tenant: str,
    trigger: str,
    source_subject: str,
    origin: str,
) -> None:
    """Publish one dead letter (idempotent per origin inside the stream's duplicate window)."""
    out = {k: v for k, v in (headers or {}).items() if k not in _DROP}
    out.update(
        {
            "Natsflow-Dead-Letter-Reason": _clean(reason),
            "Natsflow-Trigger": trigger,
            "Natsflow-Tenant": tenant,
            "Natsflow-Source-Subject": source_subject,
            "Natsflow-Source-Sequence": origin,
            "Nats-Msg-Id": f"dlq.{origin}",
        }
    )
    js = nc.jetstream()
    try:
        await js.publish(subject, data, headers=out)
        return
    except (NoRespondersError, NoStreamResponseError):  # no stream stores the subject
        fallback = dead_letter_subject(tenant, trigger, None)
        if subject == fallback:
            raise
    log.warning(
        "no stream stores dead-letter subject %s of trigger %s; dead letter kept on %s in %s",
        subject,
        trigger,
        fallback,
        DLQ_STREAM,
        extra={"tenant": tenant},
    )
    out["Natsflow-Dead-Letter-Subject"] = subject
    await js.publish(fallback, data, headers=out)
