"""A message start event whose name is an expression using ``now()`` is evaluated with the
engine's clock (it used to be evaluated with no clock at all, so it never matched)."""

from __future__ import annotations

from datetime import UTC, datetime

from modelkit import chain, event, message_def, model

from natsflow.testing import ProcessTestEngine

NAME = '=if now() > date and time("2020-01-01T00:00:00Z") then "go" else "later"'
GLOBAL = f'<bpmn:message id="m" name="{NAME.replace(chr(34), "&quot;").replace(">", "&gt;")}" />'


async def test_message_start_name_sees_the_engine_clock() -> None:
    body = "\n".join([event("startEvent", "s", message_def("m")), event("endEvent", "e"), chain("s", "e")])
    async with ProcessTestEngine(start_time=datetime(2026, 1, 1, tzinfo=UTC)) as kit:
        await kit.deploy(model("clocked", body, globals_=GLOBAL))
        assert await kit.publish_message("later") == 0
        assert await kit.publish_message("go") == 1
        assert len(await kit.instances("clocked")) == 1
