"""A trigger's durable consumer, created where the trigger server and the operator need it.

Trigger consumers were named ``trg-<tenant>-<name token>`` before 0.2, which two tenants could
share (see :func:`layout.legacy_trigger_consumer`). The consumer under the new name starts
where the old one stood (its first unacknowledged message: a message handed out but not
acknowledged is delivered again, and its launch is idempotent), then the old one is deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from natsflow_engine import layout

__all__ = ["drop_legacy_trigger_consumer", "ensure_trigger_consumer"]

log = logging.getLogger(__name__)


async def ensure_trigger_consumer(
    js: JetStreamContext, stream: str, config: ConsumerConfig, tenant: str, name: str, *, legacy: bool = True
) -> bool:
    """Create (or update) the trigger's consumer ``config`` on ``stream``; a consumer of the
    same subject under the legacy name hands over its position and is deleted (looked for
    unless ``legacy`` is False: a stream created just now). True when one did."""
    old = layout.legacy_trigger_consumer(tenant, name)
    info = None
    if legacy:
        with contextlib.suppress(NotFoundError):
            info = await js.consumer_info(stream, old)
    adopted = info is not None and info.config.filter_subject == config.filter_subject
    if info is not None and adopted:
        floor = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
        config = dataclasses.replace(
            config, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=floor + 1
        )
    await js.add_consumer(stream, config)
    if adopted:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(stream, old)
        log.info("trigger consumer %s on %s renamed to %s", old, stream, config.durable_name)
    return adopted


async def drop_legacy_trigger_consumer(js: JetStreamContext, stream: str, tenant: str, name: str) -> None:
    """Delete the trigger's consumer under its legacy name (a deleted trigger)."""
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(stream, layout.legacy_trigger_consumer(tenant, name))
