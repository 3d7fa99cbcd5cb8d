"""History records carry the variables each step set, with bounded values (replays show them)."""

from __future__ import annotations

import msgspec
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime import varlog

from natsflow.testing import ProcessTestEngine

TASK = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="valued" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:serviceTask id="work">
      <bpmn:extensionElements><zeebe:taskDefinition type="work" /></bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def _state(**scopes: dict[str, object]) -> r.InstanceState:
    state = r.InstanceState(id="i", tenant="t", process_id="p", version=1)
    for key, values in scopes.items():
        n = int(key[1:])
        state.eis[n] = r.ElementInstance(key=n, el="p" if n == 1 else f"e{n}", parent=0 if n == 1 else 1, vars=values)
    return state


def test_changes_lists_new_and_changed_values_only() -> None:
    before = varlog.snapshot(_state(s1={"a": 1, "b": [1, 2], "same": "x"}))
    after = _state(s1={"a": 2, "b": [1, 2], "same": "x", "c": None}, s5={"local": True})
    found = {(c.ei, c.name): c for c in varlog.changes(before, after)}
    assert set(found) == {(1, "a"), (1, "c"), (5, "local")}
    assert found[(1, "a")].value == 2 and found[(1, "a")].size is None
    assert found[(5, "local")].value is True
    assert varlog.changes(varlog.snapshot(after), after) == []


def test_large_values_are_recorded_by_size_within_the_record_budget() -> None:
    big = "x" * (varlog.MAX_VALUE + 10)
    medium = "y" * (varlog.MAX_VALUE - 10)
    many = {f"v{n:02}": medium for n in range(20)}  # 20 KB of values: over the 8 KB budget
    found = varlog.changes({}, _state(s1={"big": big, **many}))
    assert found[0].name == "big" and found[0].value is None and found[0].size == len(big) + 2
    recorded = [c for c in found if c.value is not None]
    assert 0 < len(recorded) < 20
    assert sum(len(msgspec.json.encode(c.value)) for c in recorded) <= varlog.MAX_TOTAL
    assert all(c.size == len(medium) + 2 for c in found[1:] if c.value is None)


def test_a_record_written_before_values_existed_still_reads() -> None:
    old = (
        b'{"t":"history","v":1,"tenant":"t","instance":"i","process_id":"p","step":3,"at":"2026-01-01T00:00:00Z",'
        b'"command":"SetVariables","state":"active","events":[{"type":"variables-set","element_id":"p","ei":1,'
        b'"data":{"names":["a"]}}]}'
    )
    record = msgspec.json.decode(old, type=r.HistoryRecord)
    assert record.variables == [] and record.events[0].data == {"names": ["a"]}


async def test_each_history_record_has_the_values_its_step_set() -> None:
    async with ProcessTestEngine() as engine:
        await engine.deploy(TASK)

        @engine.task("work")
        async def work(job: object) -> dict[str, object]:
            return {"result": {"ok": True}, "amount": 11}

        iid = await engine.start_instance("valued", {"amount": 10, "note": "n"})
        await engine.wait_until_idle()
        history = await engine.history(iid)
        assert (await engine.instance(iid)).state == "completed"
        first = {c.name: c.value for c in history[0].variables}
        assert first == {"amount": 10, "note": "n"}
        done = [h for h in history if h.command == "JobCompleted"]
        assert {c.name: c.value for c in done[0].variables} == {"result": {"ok": True}, "amount": 11}
