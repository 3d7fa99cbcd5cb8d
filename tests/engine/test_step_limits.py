"""The activation limit of a step stops loops that make no progress, and its default leaves
room for a multi-instance of 10,000 elements (pure interpreter, no NATS)."""

from __future__ import annotations

from datetime import UTC, datetime

from modelkit import chain, model
from natsflow_engine.bpmn import parse_bpmn
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.interpreter import StepLimits, step

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _mi_subprocess(sequential: bool) -> str:
    seq = ' isSequential="true"' if sequential else ""
    inner = '<bpmn:startEvent id="is" /><bpmn:task id="it" /><bpmn:endEvent id="ie" />' + chain("is", "it", "ie")
    loop = (
        f"<bpmn:multiInstanceLoopCharacteristics{seq}><bpmn:extensionElements>"
        '<zeebe:loopCharacteristics inputCollection="=items" inputElement="item" />'
        "</bpmn:extensionElements></bpmn:multiInstanceLoopCharacteristics>"
    )
    body = f'<bpmn:startEvent id="s" /><bpmn:subProcess id="each">{loop}{inner}</bpmn:subProcess>'
    return model("mi", body + '<bpmn:endEvent id="e" />' + chain("s", "each", "e"))


def _launch(items: int) -> r.Launch:
    return r.Launch(id="launch.x", tenant="t", instance="x", process_id="mi", version=1,
                    variables={"items": list(range(items))})


def test_a_ten_thousand_element_multi_instance_stays_under_the_default_limit() -> None:
    # sequential: all 10,000 iterations (4 activations each) run in this one step
    process = parse_bpmn(_mi_subprocess(sequential=True)).processes["mi"]
    result = step(process, None, _launch(10_000), NOW)
    assert result.state.state == "completed"
    assert result.state.incidents == []


def test_a_sequential_multi_instance_past_a_low_limit_is_an_endless_loop_incident() -> None:
    process = parse_bpmn(_mi_subprocess(sequential=True)).processes["mi"]
    result = step(process, None, _launch(10_000), NOW, StepLimits(max_activations=5_000))
    assert result.state.state == "active"
    [incident] = result.state.incidents
    assert incident.kind == "endless-loop"
    assert incident.message.startswith("possible endless loop at ")
    assert result.history is not None and len(result.history.events) <= 2 * 100 + 1


def _mi_task(sequential: bool, completion: str = "") -> str:
    seq = ' isSequential="true"' if sequential else ""
    cond = f"<bpmn:completionCondition>{completion}</bpmn:completionCondition>" if completion else ""
    loop = (
        f"<bpmn:multiInstanceLoopCharacteristics{seq}><bpmn:extensionElements>"
        '<zeebe:loopCharacteristics inputCollection="=items" inputElement="item" />'
        f"</bpmn:extensionElements>{cond}</bpmn:multiInstanceLoopCharacteristics>"
    )
    body = f'<bpmn:startEvent id="s" /><bpmn:task id="each">{loop}</bpmn:task>'
    return model("mi", body + '<bpmn:endEvent id="e" />' + chain("s", "each", "e"))


def test_ten_thousand_instant_sequential_iterations_do_not_nest_calls() -> None:
    # each next iteration starts from the token queue, not from inside the one before
    process = parse_bpmn(_mi_task(sequential=True)).processes["mi"]
    result = step(process, None, _launch(10_000), NOW)
    assert result.state.state == "completed"
    assert result.history is not None
    assert sum(1 for e in result.history.events if e.type == "element-completed" and e.element_id == "each") == 10_001


def test_an_instant_parallel_iteration_meeting_the_completion_condition_starts_no_more() -> None:
    process = parse_bpmn(_mi_task(sequential=False, completion="=numberOfCompletedInstances >= 3")).processes["mi"]
    result = step(process, None, _launch(100), NOW)
    assert result.state.state == "completed"
    assert result.history is not None
    activated = [e for e in result.history.events if e.type == "element-activated" and e.element_id == "each"]
    assert len(activated) == 4  # the body and three iterations
