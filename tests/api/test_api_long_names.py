"""A value too long for a NATS control line (4 KiB) never reaches one.

nats-server closes the connection on a protocol line over 4 KiB and nats-py does not reconnect
after that ``-ERR``: a long process id, message name or correlation key that became a KV key or
subject used to kill the connection shared by engine, API server and client. Names are now
refused where they enter (typed error naming the field and the limit) and correlation keys,
user data of any length, become a fixed-length hash token.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from api_kit import REVIEW, WAITER, Api
from natsflow_engine import layout

LONG = "x" * 5000


async def call(api: Api, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    msg = await api.nc.request(f"nf.api.{api.tenant}.{endpoint}", json.dumps(body).encode(), timeout=5)
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


async def still_serving(api: Api) -> None:
    assert not api.nc.is_closed
    assert (await call(api, "workflow-list", {}))["result"] is not None


async def test_long_process_id_is_refused_and_the_connection_lives(api: Api) -> None:
    reply = await call(api, "instance-start", {"process_id": LONG})
    assert reply["error"]["code"] == "invalid.name"
    assert "process id" in reply["error"]["message"] and "255" in reply["error"]["message"]
    await still_serving(api)


async def test_long_process_id_in_a_model_is_refused_at_deploy(api: Api) -> None:
    reply = await call(api, "deploy", {"source": REVIEW.replace('id="review"', f'id="{LONG}"')})
    assert reply["error"]["code"] == "invalid.bpmn"
    assert "process id" in reply["error"]["message"] and "255" in reply["error"]["message"]
    await still_serving(api)


async def test_long_message_name_is_refused_and_the_connection_lives(api: Api) -> None:
    reply = await call(api, "message-publish", {"name": LONG, "correlation_key": "k"})
    assert reply["error"]["code"] == "invalid.name"
    assert "name" in reply["error"]["message"] and "255" in reply["error"]["message"]
    await still_serving(api)


async def test_long_correlation_key_is_accepted_and_correlates(api: Api) -> None:
    assert "result" in await call(api, "deploy", {"source": WAITER})
    started = await call(api, "instance-start", {"process_id": "waiter", "variables": {"orderId": LONG}, "wait": True})
    iid = started["result"]["instance"]
    reached = 0
    for _ in range(250):  # the subscription is an effect of the launch: published right after it
        reply = await call(api, "message-publish", {"name": "paid", "correlation_key": LONG})
        reached = reply["result"]["detail"]["reached"]
        if reached:
            break
        await asyncio.sleep(0.02)
    assert reached == 1
    for _ in range(250):
        view = (await call(api, "instance-get", {"instance": iid}))["result"]
        if view["state"] == "completed":
            break
        await asyncio.sleep(0.02)
    assert view["state"] == "completed"
    assert len(layout.message_subscriptions_key(api.tenant, "paid", LONG)) < 200
    await still_serving(api)
