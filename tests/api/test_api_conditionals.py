"""The ``conditional-evaluate`` endpoint: process-level conditional start events start when a
caller evaluates them with variables (Camunda 8.9's conditional evaluation)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from api_kit import Api
from natsflow_engine.errors import InvalidInputError, InvalidNameError, UnsupportedError

from natsflow.errors import NotFoundError

CONDITIONAL = (Path(__file__).parents[1] / "models" / "restock.bpmn").read_text()


async def test_conditional_evaluation_starts_instances_and_reports_failures(api: Api) -> None:
    if api.server.handlers.messaging is None:
        with pytest.raises(UnsupportedError):
            await api.client.evaluate_conditions({"stock": 1})
        return
    await api.client.deploy(CONDITIONAL)
    # naming the process reads its latest version from the store: no wait for any index
    reply = await api.client.evaluate_conditions({"stock": 3}, process_id="restock", evaluation_id="ev-1")
    [started] = reply.started
    assert (started.process_id, started.version, started.start_event) == ("restock", 1, "low")
    assert reply.failed == []
    async with asyncio.timeout(10):
        while (view := await api.client.instance(started.instance)).state != "completed":
            await asyncio.sleep(0.02)
    assert view.variables == {"stock": 3}
    # the same evaluation id names the same instance: nothing new starts
    again = await api.client.evaluate_conditions({"stock": 3}, process_id="restock", evaluation_id="ev-1")
    assert [s.instance for s in again.started] == [started.instance]
    assert (await api.client.evaluate_conditions({"stock": 50}, process_id="restock")).started == []
    failed = (await api.client.evaluate_conditions({"stock": "many"}, process_id="restock")).failed
    assert [(f.start_event, "must be true or false" in f.error) for f in failed] == [("low", True)]


async def test_conditional_evaluation_errors_are_typed(api: Api) -> None:
    if api.server.handlers.messaging is None:
        pytest.skip("messages and signals are not in this build")
    await api.client.deploy(CONDITIONAL)
    with pytest.raises(NotFoundError):
        await api.client.evaluate_conditions({"stock": 1}, process_id="nothere")
    with pytest.raises(InvalidInputError, match="max_starts must be between 1 and 1000"):
        await api.client.evaluate_conditions({"stock": 1}, process_id="restock", max_starts=5000)
    with pytest.raises(InvalidNameError):
        await api.client.evaluate_conditions({"stock": 1}, evaluation_id="x" * 1000)
