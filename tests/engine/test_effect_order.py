"""Effects that change the same record take effect in the order the step listed them.

A non-interrupting boundary event that fires and is armed again lists an ``Unsubscribe`` and a
``Subscribe`` of the same element instance. Run side by side, the subscribe could land first
(a no-op: the entry is there) and the unsubscribe after it, leaving the boundary deaf to the
next message although the instance waits for it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from nats.aio.client import Client
from natsflow_engine import layout
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.engine import Engine, EngineSettings
from natsflow_engine.runtime.messaging import Messaging
from natsflow_engine.store import EffectPublisher


class SlowUnsubscribe(Messaging):
    """Its unsubscribe takes longer than a subscribe (a slower round trip)."""

    async def unsubscribe(self, sub: r.Unsubscribe) -> None:
        await asyncio.sleep(0.3)
        await super().unsubscribe(sub)


async def test_an_unsubscribe_listed_before_a_subscribe_is_applied_before_it(nc: Client, unique: str) -> None:
    tenant = f"order{unique}"
    engine = await Engine(nc, EngineSettings(fetch_timeout=0.2)).start()
    try:
        real = engine.store.effects
        messaging = SlowUnsubscribe(real.js, real.messaging.kv, clock=real.clock)
        effects = EffectPublisher(real.js, real.usertasks, real.timers, messaging, real.clock)
        now = datetime.now(UTC)
        armed = r.Subscribe(kind="message", tenant=tenant, instance="i1", ei=7, element_id="b", name="m", key="k")
        await messaging.subscribe(armed, now)
        fired = r.Unsubscribe(kind="message", tenant=tenant, instance="i1", ei=7, name="m", key="k")
        await effects.publish([fired, armed])  # fired, then armed again
        subscribers = await messaging._subscriptions(layout.message_subscriptions_key(tenant, "m", "k"))
        assert subscribers == [("i1", 7)]
    finally:
        await engine.stop()
