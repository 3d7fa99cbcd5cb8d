"""Step-by-step simulations over HTTP (``/api/simulations``): events fired by hand, typed
errors for bad moves, owners only, and the bounds of the registry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from console_kit import Stack, operator_token, viewer_token
from natsflow_console.sessions import Sessions
from natsflow_console.simulation import Run, parse_scenario
from natsflow_engine.errors import ConflictError, NotFoundError
from test_console_http import call

pytestmark = pytest.mark.timeout(180)
PAYMENT = (Path(__file__).parent / "models" / "payment.bpmn").read_text()
SCENARIO: dict[str, Any] = {"variables": {"orderId": "o-1"}, "userTasks": {"confirm": {"complete": {"ok": True}}}}


def start(stack: Stack, token: str) -> dict[str, Any]:
    status, view = call(stack, "POST", "/api/simulations", token, {"source": PAYMENT, "scenario": SCENARIO})
    assert status == 201, view
    return dict(view)


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_a_message_fired_by_hand_reaches_the_end(stack: Stack, tenants: dict[str, str], role: str) -> None:
    token = (operator_token if role == "operator" else viewer_token)(tenants["alice"])
    view = start(stack, token)
    assert view["result"]["first"]["path"] == ["start", "wait"] and view["finished"] is False
    assert [(t["element_id"], t["at"]) for t in view["timers"]] == [("too_late", 7200.0)]
    sid = view["id"]
    status, view = call(stack, "POST", f"/api/simulations/{sid}/fire", token, {"advance": "PT15M"})
    assert status == 200 and view["elapsed"] == 900.0
    message = {"name": "paid", "correlationKey": "o-1", "variables": {"amount": 3}}
    status, view = call(stack, "POST", f"/api/simulations/{sid}/fire", token, {"message": message})
    assert status == 200 and view["reached"] == 1
    first = view["result"]["first"]
    assert (first["state"], first["path"]) == ("completed", ["start", "wait", "confirm", "ship", "paid"])
    assert [r["step"] for r in view["result"]["history"]] == list(range(1, len(view["result"]["history"]) + 1))
    assert view["scenario"]["events"] == [{"at": "PT15M"}, {"at": "PT15M", "message": message}]
    assert call(stack, "GET", f"/api/simulations/{sid}", token)[1]["scenario"] == view["scenario"]
    assert call(stack, "DELETE", f"/api/simulations/{sid}", token)[0] == 204
    status, body = call(stack, "GET", f"/api/simulations/{sid}", token)
    assert status == 404 and body["error"]["code"] == "not_found"


def test_only_the_owner_moves_a_simulation(stack: Stack, tenants: dict[str, str]) -> None:
    sid = start(stack, operator_token(tenants["alice"]))["id"]
    for other in (viewer_token(tenants["alice"]), operator_token(tenants["bob"])):
        assert call(stack, "GET", f"/api/simulations/{sid}", other)[0] == 404
        assert call(stack, "POST", f"/api/simulations/{sid}/fire", other, {"advance": "PT1H"})[0] == 404
        assert call(stack, "DELETE", f"/api/simulations/{sid}", other)[0] == 404
    status, view = call(stack, "POST", f"/api/simulations/{sid}/finish", operator_token(tenants["alice"]))
    assert status == 200 and view["finished"] is True
    assert view["result"]["first"]["path"] == ["start", "wait", "too_late", "expired"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "fire: exactly one of message, signal, advance, timer"),
        ({"advance": "PT1H", "signal": {"name": "s"}}, "fire: exactly one of"),
        ({"wait": 1}, "wait: unknown field"),
        ({"advance": "soon"}, "advance: an ISO 8601 duration"),
        ({"advance": "P20Y"}, "advance: a duration from 0 to 10 years"),
        ({"message": {"name": ""}}, "message.name: a string of 1 to 256 characters"),
        ({"message": {"name": "paid", "correlationKey": [1]}}, "message.correlationKey: a string"),
        ({"signal": {"name": "s", "variables": [1]}}, "signal.variables: a mapping"),
        ({"signal": {"name": "s", "ttl": 1}}, "signal.ttl: unknown field"),
        ({"timer": "x" * 300}, "timer: the id of a pending timer"),
        ({"timer": "gone"}, "timer: no pending timer 'gone'"),
    ],
)
def test_a_bad_move_is_refused_naming_the_field(stack: Stack, tenants: dict[str, str], body: Any, message: str) -> None:
    token = operator_token(tenants["bob"])
    sid = start(stack, token)["id"]
    status, reply = call(stack, "POST", f"/api/simulations/{sid}/fire", token, body)
    assert status == 400 and reply["error"]["message"].startswith(message), reply
    status, view = call(stack, "GET", f"/api/simulations/{sid}", token)  # still there, unmoved
    assert status == 200 and view["elapsed"] == 0.0


def test_a_finished_simulation_fires_nothing_more(stack: Stack, tenants: dict[str, str]) -> None:
    token = operator_token(tenants["bob"])
    sid = start(stack, token)["id"]
    assert call(stack, "POST", f"/api/simulations/{sid}/finish", token)[0] == 200
    status, reply = call(stack, "POST", f"/api/simulations/{sid}/fire", token, {"advance": "next"})
    assert status == 409 and "ran to its end" in reply["error"]["message"]
    status, reply = call(stack, "POST", "/api/simulations", token, {"source": PAYMENT, "scenario": {"seed": "x"}})
    assert status == 400 and reply["error"]["message"] == "seed: a whole number"
    assert call(stack, "GET", "/api/simulations/" + "x" * 200, token)[0] == 404


async def test_the_registry_bounds_simulations_and_ends_unused_ones() -> None:
    now = [0.0]
    sessions = Sessions(limit=2, idle=60.0, lifetime=600.0, clock=lambda: now[0])

    def run() -> Run:
        return Run(PAYMENT, parse_scenario(SCENARIO))

    try:
        a = await sessions.open(("t", "a"), run())
        b = await sessions.open(("t", "b"), run())
        with pytest.raises(ConflictError, match="2 step-by-step simulations are open"):
            await sessions.open(("t", "c"), run())
        again = await sessions.open(("t", "a"), run())  # a's previous one ends
        with pytest.raises(NotFoundError):
            sessions.get(("t", "a"), a.id)
        assert sessions.get(("t", "a"), again.id) is again and len(sessions) == 2
        now[0] = 45.0
        sessions.get(("t", "b"), b.id)  # used: b stays
        now[0] = 90.0
        await sessions.reap()
        assert len(sessions) == 1
        with pytest.raises(NotFoundError):
            sessions.get(("t", "a"), again.id)
        c = await sessions.open(("t", "c"), run())
        now[0] = 700.0  # past the lifetime of b, however used (and c unused for too long)
        with pytest.raises(NotFoundError):
            sessions.get(("t", "b"), b.id)
        await sessions.reap()
        assert len(sessions) == 0
        with pytest.raises(ConflictError, match="has ended"):  # its engine and server are gone
            await c.run.advance(timedelta(hours=1))
    finally:
        await sessions.stop()


async def test_a_move_out_of_time_ends_the_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    from natsflow_console import sessions as module
    from natsflow_console.scenario import ScenarioEvent
    from natsflow_console.simulation import ScenarioError

    sessions = Sessions()
    try:
        session = await sessions.open(("t", "a"), Run(PAYMENT, parse_scenario(SCENARIO)))
        monkeypatch.setattr(module, "MOVE_TIMEOUT", 1e-6)  # it runs out at the move's first wait
        paid = ScenarioEvent(timedelta(0), "message", name="paid", correlation_key="o-1")
        with pytest.raises(ScenarioError, match="did not finish within"):
            await sessions.move(session, lambda run: run.fire(paid))
        assert session.run.closed and len(sessions) == 0
    finally:
        await sessions.stop()
