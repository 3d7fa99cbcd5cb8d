"""A simulation moved on by hand (:class:`Run`): messages, signals and the clock between steps,
the scenario's own events on the way, and the scenario "as run" that ``natsflow simulate``
replays to the same end."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from natsflow_console.scenario import ScenarioEvent
from natsflow_console.simulation import Run, ScenarioError, parse_scenario, simulate
from natsflow_engine.errors import ConflictError

from natsflow.cli import cli

pytestmark = pytest.mark.timeout(120)
PAYMENT = (Path(__file__).parent / "models" / "payment.bpmn").read_text()
PAID = ScenarioEvent(timedelta(0), "message", name="paid", correlation_key="o-1", variables={"amount": 7})
BASE: dict[str, Any] = {
    "variables": {"orderId": "o-1"},
    "tasks": {"ship": {"complete": {"shipped": True}}},
    "userTasks": {"confirm": {"complete": {"ok": True}}},
}


async def replay(tmp_path: Path, document: dict[str, Any]) -> dict[str, Any]:
    """``natsflow simulate`` on the saved scenario file (in a thread: the command runs its own
    event loop); its JSON result."""
    return await asyncio.to_thread(_replay, tmp_path, document)


def _replay(tmp_path: Path, document: dict[str, Any]) -> dict[str, Any]:
    saved = tmp_path / "as-run.yaml"
    saved.write_text(yaml.safe_dump(document))
    model = tmp_path / "payment.bpmn"
    model.write_text(PAYMENT)
    out = CliRunner().invoke(cli, ["simulate", str(model), "--scenario", str(saved), "-o", "json"])
    assert out.exit_code == 0, out.output
    result: dict[str, Any] = json.loads(out.stdout)
    return result


async def test_a_message_fired_by_hand_moves_the_token_to_the_end(tmp_path: Path) -> None:
    async with Run(PAYMENT, parse_scenario(BASE)) as run:
        result, timers = await run.view()
        assert (result.first.state, result.first.path) == ("active", ["start", "wait"])
        assert [(t.element_id, t.at) for t in timers] == [("too_late", 7200.0)]
        wrong = ScenarioEvent(timedelta(0), "message", name="paid", correlation_key="o-2")
        assert await run.fire(wrong) == 0  # another order's payment reaches nothing
        await run.advance(timedelta(minutes=30))
        assert await run.fire(PAID) == 1
        result, timers = await run.view()
        assert result.first.state == "completed" and timers == []
        assert result.first.path == ["start", "wait", "confirm", "ship", "paid"]
        assert result.first.variables == {"orderId": "o-1", "amount": 7, "ok": True, "shipped": True}
        assert result.virtual_time.startswith("2026-01-01T00:30:00")
        document = run.scenario_as_run()
    assert document["until"] == "PT30M"
    assert document["events"] == [
        {"at": "P0D", "message": {"name": "paid", "correlationKey": "o-2", "variables": {}}},
        {"at": "PT30M"},
        {"at": "PT30M", "message": {"name": "paid", "correlationKey": "o-1", "variables": {"amount": 7}}},
    ]
    replayed = await replay(tmp_path, document)
    assert replayed["first"]["path"] == result.first.path
    assert replayed["first"]["variables"] == result.first.variables
    assert replayed["virtual_time"] == result.virtual_time


async def test_the_clock_by_hand_fires_timers_and_scheduled_events_on_the_way(tmp_path: Path) -> None:
    events = [
        {"at": "PT3H", "signal": {"name": "cancel-all"}},
        {"at": "PT30M", "message": {"name": "paid", "correlationKey": "o-9"}},
    ]
    async with Run(PAYMENT, parse_scenario(dict(BASE, instances=2, events=events))) as run:
        await run.advance(timedelta(hours=1))  # the message at 30 minutes fires on the way
        result, timers = await run.view()
        assert result.states == {"active": 2} and [(t.element_id, t.at) for t in timers] == [("too_late", 7200.0)] * 2
        await run.fire_timer(timers[0].id)  # the other one is due at the same time
        result, timers = await run.view()
        assert result.states == {"completed": 2} and timers == [] and result.elements["expired"] == 2
        assert result.virtual_time.startswith("2026-01-01T02:00:00")
        assert [e.document() for e in run.scheduled] == [{"at": "PT3H", "signal": {"name": "cancel-all", "variables": {}}}]
        await run.next()  # the scheduled signal (nobody waits for it any more)
        assert run.scheduled == [] and run.elapsed == timedelta(hours=3)
        with pytest.raises(ConflictError, match="nothing to wait for"):
            await run.next()
        document = run.scenario_as_run()
    assert [(e["at"], sorted(e)) for e in document["events"]] == [
        ("PT30M", ["at", "message"]), ("PT1H", ["at"]), ("PT2H", ["at"]), ("PT3H", ["at", "signal"])
    ]
    replayed = await replay(tmp_path, document)
    assert replayed["elements"] == result.elements and replayed["states"] == {"completed": 2}
    assert replayed["virtual_time"].startswith("2026-01-01T03:00:00")


async def test_a_signal_by_hand_and_the_rest_run_to_the_end(tmp_path: Path) -> None:
    async with Run(PAYMENT, parse_scenario(dict(BASE, instances=2))) as run:
        assert await run.fire(ScenarioEvent(timedelta(0), "signal", name="cancel-all")) == 2
        result = await run.result()
        assert result.elements["end_cancelled"] == 2 and result.states == {"completed": 2}
    async with Run(PAYMENT, parse_scenario(BASE)) as run:
        await run.finish()  # as a whole simulation: the timer fires on its schedule
        result = await run.result()
        assert result.first.path == ["start", "wait", "too_late", "expired"]
        with pytest.raises(ConflictError, match="ran to its end"):
            await run.fire(PAID)
        document = run.scenario_as_run()
    assert document["until"] == "P30D" and document["events"] == []
    assert (await replay(tmp_path, document))["first"]["path"] == result.first.path
    assert (await simulate(PAYMENT, parse_scenario(BASE))).first.path == result.first.path


async def test_moves_that_cannot_be_made_are_refused_with_the_reason() -> None:
    async with Run(PAYMENT, parse_scenario(BASE)) as run:
        await run.advance(timedelta(hours=1))
        with pytest.raises(ScenarioError, match=r"^advance: the virtual clock only moves forward"):
            await run.advance_to(timedelta(minutes=1))
        with pytest.raises(ScenarioError, match=r"^advance: at most 10 years"):
            await run.advance(timedelta(days=3660))
        with pytest.raises(ScenarioError, match=r"^timer: no pending timer 'nope'"):
            await run.fire_timer("nope")
        with pytest.raises(ScenarioError, match=r"^event: a message or a signal"):
            await run.fire(ScenarioEvent(timedelta(0), "time"))
        assert (await run.result()).first.path == ["start", "wait"]
    with pytest.raises(ConflictError, match="has ended"):
        await run.fire(PAID)


async def test_a_move_cancelled_midway_ends_the_run() -> None:
    async with Run(PAYMENT, parse_scenario(BASE)) as run:
        moving = asyncio.create_task(run.fire(PAID))
        await asyncio.sleep(0)  # the move runs up to its first wait on NATS
        moving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await moving
        assert run.closed  # its state is no scenario's: nothing more can be fired
        with pytest.raises(ConflictError, match="has ended"):
            await run.fire(PAID)
