"""Instance records of every earlier version are read by the current code and run to the end.

The golden records (``tests/golden/<version>/``) were captured at wait states by the code that
wrote that version (``tests/golden/make_golden.py``). Each one is decoded into the current,
typed record, then stored in a fresh engine's bucket as it was, and driven to completion: the
scenario's script first, then whatever waits remain, each satisfied by the command that ends
that wait (read from the typed wait: job, user task, timer, message, signal, called instance,
incident).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import pytest
from natsflow_engine import layout
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime import waits as w
from natsflow_engine.testing import ProcessTestEngine

GOLDEN = Path(__file__).parents[1] / "golden"
sys.path.insert(0, str(GOLDEN))

from scenarios import SCENARIOS, START, TENANT, Scenario  # noqa: E402

VERSIONS = sorted(d.name for d in GOLDEN.iterdir() if d.is_dir() and d.name.startswith("v"))
CASES = [pytest.param(v, s, id=f"{v}-{s.name}") for v in VERSIONS for s in SCENARIOS]

# what each golden record holds once decoded: element id -> (wait type, role type)
TYPED: dict[str, dict[str, tuple[str | None, str | None]]] = {
    "job_with_mappings": {"work": ("JobWait", None)},
    "user_task": {"approve": ("UserTaskWait", None)},
    "timer_catch": {"pause": ("TimerWait", None)},
    "message_catch_and_receive_task": {"paid": ("MessageWait", None)},
    "signal_catch": {"go": ("SignalWait", None)},
    "boundaries": {
        "work": ("JobWait", None),
        "tick": ("TimerWait", "Listener"),
        "stop": ("MessageWait", "Listener"),
        "halt": ("SignalWait", "Listener"),
    },
    "event_gateway": {"gw": (None, None), "late": ("TimerWait", "Listener"), "paid": ("MessageWait", "Listener")},
    "event_subprocesses": {
        "ps": ("MessageWait", "Listener"),
        "ls": ("TimerWait", "Listener"),
        "ship": ("UserTaskWait", None),
    },
    "call_activity_parent": {"call": ("ChildCall", None)},
    "call_activity_child": {"inner": ("JobWait", None)},
    "multi_instance_parallel": {"each": ("JobWait", "Iteration")},
    "multi_instance_sequential": {"each": ("JobWait", "Iteration")},
    "standard_loop": {"poll": ("JobWait", "Iteration")},
    "parallel_join": {"b": ("JobWait", None)},
    "inclusive_join": {"b": ("JobWait", None)},
    "compensation_recorded": {"review": ("JobWait", None)},
    "compensation_running": {"undo": (None, "CompensationThrow"), "cancel_flight": ("JobWait", "CompensationHandler")},
    "incident_job_type": {"work": (None, None)},
    "incident_no_flow": {"work": (None, None)},
    "incident_called_element": {"call": (None, None)},
}


def golden(version: str, scenario: Scenario) -> bytes:
    return (GOLDEN / version / f"{scenario.name}.json").read_bytes()


def _name(value: object) -> str | None:
    return None if value is None else type(value).__name__


def test_every_scenario_has_a_golden_record_in_every_version() -> None:
    assert VERSIONS, "no golden records"
    for version in VERSIONS:
        assert sorted(p.stem for p in (GOLDEN / version).glob("*.json")) == sorted(s.name for s in SCENARIOS)
    assert set(TYPED) == {s.name for s in SCENARIOS}


@pytest.mark.parametrize(("version", "scenario"), CASES)
def test_golden_record_decodes_into_typed_waits(version: str, scenario: Scenario) -> None:
    state = r.decode_state(golden(version, scenario))
    assert state.v == r.STATE_VERSION
    got = {ei.el: (_name(ei.wait), _name(ei.role)) for ei in state.eis.values() if ei.key != 1}
    assert got == TYPED[scenario.name]
    assert r.decode_state(r.encode(state)) == state  # the current version round-trips unchanged


def test_migrated_details_keep_their_values() -> None:
    def load(name: str) -> r.InstanceState:
        return r.decode_state(golden("v1", next(s for s in SCENARIOS if s.name == name)))

    tick = next(ei for ei in load("boundaries").eis.values() if ei.el == "tick")
    assert isinstance(tick.wait, w.TimerWait) and tick.wait.due == "2026-01-01T00:10:00Z"
    assert tick.wait.cycle == w.TimerCycle(r=3, i=600.0) and tick.role == w.Listener(of="boundary")
    body = load("multi_instance_parallel").eis[3]
    assert body.role == w.LoopBody(n=3, next=3, seq=False, items=[3, 1, 2], out=[None, None, None])
    assert body.flow == "f_s_each"
    running = load("compensation_running")
    assert running.eis[6].role == w.CompensationThrow(queue=["cancel_hotel"])
    assert running.eis[7].role == w.CompensationHandler(thrower=6)
    assert load("compensation_recorded").eis[1].compensable == ["book_hotel", "book_flight"]
    incident = load("incident_no_flow").eis[4]
    assert incident.phase == "leave" and incident.incident is not None
    message = next(ei for ei in load("event_gateway").eis.values() if ei.el == "paid")
    assert message.wait == w.MessageWait(name="payment", key="C-3")
    assert load("parallel_join").joins == {"1/join": ["f3"]}


def test_unknown_versions_are_refused_as_undecodable() -> None:
    raw = json.loads(golden("v1", SCENARIOS[0]))
    for version in (0, -1, r.STATE_VERSION + 1):
        with pytest.raises(Exception, match="version") as info:
            r.decode_state(json.dumps({**raw, "v": version}).encode())
        assert type(info.value).__name__ == "DecodeError"


def satisfy(state: r.InstanceState, ei: r.ElementInstance, n: int) -> r.Command:
    """The command that ends what ``ei`` waits for."""
    cid, tenant, iid = f"golden.{n}", state.tenant, state.id
    match ei.wait:
        case w.JobWait(key=key):
            return r.JobCompleted(id=cid, tenant=tenant, instance=iid, job=key, ei=ei.key)
        case w.UserTaskWait(task=task):
            return r.UserTaskCompleted(id=cid, tenant=tenant, instance=iid, task=task)
        case w.TimerWait(timer=timer, due=due):
            return r.TimerFired(id=cid, tenant=tenant, instance=iid, ei=ei.key, timer=timer, due=due)
        case w.MessageWait(name=name, key=key):
            return r.MessageCorrelated(id=cid, tenant=tenant, instance=iid, ei=ei.key, name=name, key=key,
                                       message_id=cid)
        case w.SignalWait(name=name):
            return r.SignalReceived(id=cid, tenant=tenant, instance=iid, ei=ei.key, name=name)
        case w.ChildCall(child=child):
            return r.ChildFinished(id=cid, tenant=tenant, instance=iid, ei=ei.key, child=child, state="completed")
        case None:
            raise AssertionError(f"element instance {ei.key} ({ei.el}) waits for nothing")


def next_command(state: r.InstanceState, scenario: Scenario, script: list[str], n: int) -> r.Command:
    if state.incidents:
        incident = state.incidents[0]
        return r.ResolveIncident(id=f"golden.{n}", tenant=state.tenant, instance=state.id,
                                 incident=incident.id, variables=scenario.fixes)
    waiting = sorted((ei for ei in state.eis.values() if ei.wait is not None), key=lambda ei: ei.key)
    if script:
        element = script.pop(0)
        return satisfy(state, next(ei for ei in waiting if ei.el == element), n)
    plain = [ei for ei in waiting if not ei.listener]
    return satisfy(state, (plain or waiting)[0], n)


def in_order(wanted: tuple[str, ...], seen: list[str]) -> bool:
    remaining = iter(seen)
    return all(any(s == w for s in remaining) for w in wanted)


@pytest.mark.parametrize(("version", "scenario"), CASES)
async def test_golden_record_continues_to_completion(version: str, scenario: Scenario) -> None:
    async with ProcessTestEngine(tenant=TENANT, start_time=datetime.fromisoformat(START)) as kit:
        for _pid, xml in scenario.models:
            await kit.deploy(xml)
        raw = json.dumps(json.loads(golden(version, scenario)), separators=(",", ":")).encode()
        iid = r.decode_state(raw).id
        key = layout.instance_key(TENANT, iid)
        await kit.instances_kv.put(key, raw)  # stored as the old engine left it
        script = list(scenario.script)
        for n in range(40):
            entry = await kit.instances_kv.get(key)
            state = r.decode_state(entry.value or b"")
            if state.state != "active":
                break
            cmd = next_command(state, scenario, script, n)
            await kit.js.publish(layout.command_subject(TENANT, iid), r.encode(cmd), headers={"Nats-Msg-Id": cmd.id})
            await kit.wait_until_idle()
        assert state.state == "completed", state
        assert state.v == r.STATE_VERSION
        assert not script
        snap = await kit.instance(iid)
        assert {k: snap.variables.get(k) for k in scenario.expect} == scenario.expect
        assert in_order(scenario.reached, snap.completed_elements), snap.completed_elements
