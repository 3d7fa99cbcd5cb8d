"""One test per validation rule: the issue names the element, its source line and the rule."""

from __future__ import annotations

import pytest
from natsflow_engine.bpmn import parse_bpmn
from natsflow_engine.bpmn.model import Event, MultipleTrigger

from natsflow.errors import BpmnValidationError, ValidationIssue

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" \
xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs" targetNamespace="urn:test">
"""

OK_START = """
  <bpmn:startEvent id="start" />
  <bpmn:endEvent id="end" />
  <bpmn:sequenceFlow id="f_ok" sourceRef="start" targetRef="end" />
"""


def doc(body: str, extra: str = "", executable: str = "true") -> str:
    return f'{HEAD}<bpmn:process id="p" isExecutable="{executable}">{body}</bpmn:process>{extra}</bpmn:definitions>'


def issues_of(xml: str) -> list[ValidationIssue]:
    with pytest.raises(BpmnValidationError) as info:
        parse_bpmn(xml)
    return info.value.errors


def line_with(xml: str, marker: str) -> int:
    for number, line in enumerate(xml.splitlines(), start=1):
        if marker in line:
            return number
    raise AssertionError(f"{marker!r} not in document")


def expect(xml: str, element_id: str | None, fragment: str, marker: str | None = None) -> ValidationIssue:
    """Assert an issue for ``element_id`` mentioning ``fragment`` at the line of ``marker``."""
    found = issues_of(xml)
    line = line_with(xml, marker or f'id="{element_id}"')
    for issue in found:
        if issue.element_id == element_id and fragment in issue.message:
            assert issue.line == line, f"{issue} is not at line {line}"
            if element_id:
                assert f"'{element_id}'" in str(issue)
            return issue
    raise AssertionError(f"no issue for {element_id!r} with {fragment!r} in:\n" + "\n".join(map(str, found)))


def service(task_id: str, job: str = "work", extra: str = "") -> str:
    return f"""
  <bpmn:serviceTask id="{task_id}">
    <bpmn:extensionElements><zeebe:taskDefinition type="{job}" /></bpmn:extensionElements>{extra}
  </bpmn:serviceTask>"""


# --- structure ---------------------------------------------------------------------------


def test_duplicate_ids() -> None:
    xml = doc(OK_START + service("t") + '\n  <bpmn:task id="t" />\n')
    issue = expect(xml, "t", "duplicate id 't'", marker='<bpmn:task id="t"')
    assert "first used at line" in issue.message


def test_flow_without_source_ref() -> None:
    xml = doc(OK_START + '\n  <bpmn:sequenceFlow id="f3" targetRef="end" />\n')
    expect(xml, "f3", "sequence flow 'f3' has no sourceRef")


def test_flow_without_target_ref() -> None:
    xml = doc(OK_START + '\n  <bpmn:sequenceFlow id="f3" sourceRef="start" />\n')
    expect(xml, "f3", "sequence flow 'f3' has no targetRef")


def test_flow_to_unknown_node() -> None:
    xml = doc(OK_START + '\n  <bpmn:sequenceFlow id="f3" sourceRef="start" targetRef="nowhere" />\n')
    expect(xml, "f3", "targetRef 'nowhere', which is not a flow node")


def test_flow_crossing_scope_boundary() -> None:
    body = (
        OK_START
        + """
  <bpmn:subProcess id="sub">
    <bpmn:startEvent id="s_start" />
    <bpmn:endEvent id="s_end" />
    <bpmn:sequenceFlow id="s_f" sourceRef="s_start" targetRef="s_end" />
    <bpmn:sequenceFlow id="escape" sourceRef="s_end" targetRef="end" />
  </bpmn:subProcess>
"""
    )
    expect(doc(body), "escape", "cannot cross a sub-process boundary")


def test_process_without_start_event() -> None:
    xml = doc(
        service("t")
        + '\n  <bpmn:endEvent id="end" />\n  <bpmn:sequenceFlow id="f" sourceRef="t" targetRef="end" />\n'
    )
    expect(xml, "p", "process 'p' has flow nodes but no start event")


def test_process_with_two_none_start_events() -> None:
    xml = doc(OK_START + '\n  <bpmn:startEvent id="start2" />\n')
    expect(xml, "p", "2 none start events ('start', 'start2')")


def test_subprocess_without_none_start_event() -> None:
    body = (
        OK_START
        + """
  <bpmn:subProcess id="sub">
    <bpmn:task id="inner" />
  </bpmn:subProcess>
"""
    )
    expect(doc(body), "sub", "sub-process 'sub' has flow nodes but no none start event")


def test_subprocess_with_triggered_start_event() -> None:
    body = (
        OK_START
        + """
  <bpmn:subProcess id="sub">
    <bpmn:startEvent id="timed"><bpmn:timerEventDefinition><bpmn:timeDuration>PT1M</bpmn:timeDuration>
    </bpmn:timerEventDefinition></bpmn:startEvent>
  </bpmn:subProcess>
"""
    )
    expect(doc(body), "timed", "not allowed on the start event of an embedded sub-process")


def test_event_subprocess_start_needs_trigger() -> None:
    body = (
        OK_START
        + """
  <bpmn:subProcess id="esp" triggeredByEvent="true">
    <bpmn:startEvent id="plain" />
  </bpmn:subProcess>
"""
    )
    xml = doc(body)
    expect(
        xml,
        "plain",
        "has no event definition, which is not allowed on the start event of an event sub-process",
    )


def test_event_subprocess_needs_one_start_event() -> None:
    body = (
        OK_START
        + """
  <bpmn:subProcess id="esp" triggeredByEvent="true">
    <bpmn:task id="inner" />
  </bpmn:subProcess>
"""
    )
    issue = expect(doc(body), "esp", "event sub-process 'esp' needs exactly one start event with a trigger")
    assert issue.message.endswith("it has 0")


def test_event_subprocess_with_flows() -> None:
    body = """
  <bpmn:startEvent id="start" />
  <bpmn:endEvent id="end" />
  <bpmn:sequenceFlow id="f_ok" sourceRef="start" targetRef="esp" />
  <bpmn:subProcess id="esp" triggeredByEvent="true">
    <bpmn:startEvent id="s"><bpmn:signalEventDefinition signalRef="sig" /></bpmn:startEvent>
  </bpmn:subProcess>
"""
    expect(doc(body, '<bpmn:signal id="sig" name="go" />'), "esp", "must not have incoming or outgoing")


def test_start_event_with_incoming_and_end_with_outgoing() -> None:
    body = OK_START + '\n  <bpmn:sequenceFlow id="back" sourceRef="end" targetRef="start" />\n'
    xml = doc(body)
    expect(xml, "start", "must not have incoming sequence flows")
    expect(xml, "end", "must not have outgoing sequence flows")


def test_missing_id() -> None:
    xml = doc(OK_START + '\n  <bpmn:task name="nameless" />\n')
    expect(xml, "p", "'task' at line 8 has no id", marker='name="nameless"')


# --- tasks -------------------------------------------------------------------------------


@pytest.mark.parametrize(("tag", "word"), [("serviceTask", "service task"), ("sendTask", "send task")])
def test_job_task_without_task_definition(tag: str, word: str) -> None:
    xml = doc(OK_START + f'\n  <bpmn:{tag} id="job" />\n')
    expect(xml, "job", f"{word} 'job' has no zeebe:taskDefinition with a job type")


def test_business_rule_task_without_task_definition() -> None:
    xml = doc(OK_START + '\n  <bpmn:businessRuleTask id="rule" />\n')
    expect(xml, "rule", "business rule task 'rule' has no zeebe:taskDefinition")


def test_business_rule_task_with_dmn_decision() -> None:
    body = (
        OK_START
        + """
  <bpmn:businessRuleTask id="rule">
    <bpmn:extensionElements><zeebe:calledDecision decisionId="d" resultVariable="r" /></bpmn:extensionElements>
  </bpmn:businessRuleTask>
"""
    )
    expect(doc(body), "rule", "DMN decisions are not supported; use a zeebe:taskDefinition")


def test_task_definition_without_type() -> None:
    body = (
        OK_START
        + """
  <bpmn:serviceTask id="job">
    <bpmn:extensionElements><zeebe:taskDefinition retries="2" /></bpmn:extensionElements>
  </bpmn:serviceTask>
"""
    )
    expect(doc(body), "job", "zeebe:taskDefinition without a job type", marker="retries=")


def test_retries_not_a_number() -> None:
    body = (
        OK_START
        + """
  <bpmn:serviceTask id="job">
    <bpmn:extensionElements><zeebe:taskDefinition type="x" retries="many" /></bpmn:extensionElements>
  </bpmn:serviceTask>
"""
    )
    expect(doc(body), "job", "retries of service task 'job' is 'many'", marker="retries=")


def test_script_task_without_script_or_job() -> None:
    xml = doc(OK_START + '\n  <bpmn:scriptTask id="script" />\n')
    expect(xml, "script", "neither a zeebe:script expression nor a zeebe:taskDefinition")


def test_script_without_result_variable() -> None:
    body = (
        OK_START
        + """
  <bpmn:scriptTask id="script">
    <bpmn:extensionElements><zeebe:script expression="=1 + 1" /></bpmn:extensionElements>
  </bpmn:scriptTask>
"""
    )
    expect(doc(body), "script", "zeebe:script without a resultVariable", marker="zeebe:script ")


def test_receive_task_without_message() -> None:
    xml = doc(OK_START + '\n  <bpmn:receiveTask id="wait" />\n')
    expect(xml, "wait", "receive task 'wait' has no message")


def test_receive_task_with_unknown_message() -> None:
    xml = doc(OK_START + '\n  <bpmn:receiveTask id="wait" messageRef="Msg_missing" />\n')
    expect(xml, "wait", "refers to message 'Msg_missing', which is not defined")


def test_message_without_name() -> None:
    xml = doc(OK_START + '\n  <bpmn:receiveTask id="wait" messageRef="m" />\n', '<bpmn:message id="m" />')
    expect(xml, "wait", "refers to message 'm', which has no name")


def test_message_catch_without_message() -> None:
    body = (
        OK_START
        + """
  <bpmn:intermediateCatchEvent id="catch">
    <bpmn:messageEventDefinition />
  </bpmn:intermediateCatchEvent>
"""
    )
    expect(
        doc(body), "catch", "intermediate catch event 'catch' has no message", marker="<bpmn:messageEventDef"
    )


def test_message_catch_without_correlation_key() -> None:
    body = (
        OK_START
        + """
  <bpmn:intermediateCatchEvent id="catch">
    <bpmn:messageEventDefinition messageRef="m" />
  </bpmn:intermediateCatchEvent>
"""
    )
    xml = doc(body, '<bpmn:message id="m" name="ping" />')
    expect(xml, "catch", "has no correlation key", marker='messageRef="m"')


def test_call_activity_without_process_id() -> None:
    body = (
        OK_START
        + """
  <bpmn:callActivity id="call">
    <bpmn:extensionElements><zeebe:calledElement propagateAllChildVariables="false" /></bpmn:extensionElements>
  </bpmn:callActivity>
"""
    )
    expect(doc(body), "call", "call activity 'call' has no called process")


def test_io_mapping_without_target() -> None:
    body = (
        OK_START
        + """
  <bpmn:task id="t">
    <bpmn:extensionElements><zeebe:ioMapping><zeebe:input source="=a" /></zeebe:ioMapping></bpmn:extensionElements>
  </bpmn:task>
"""
    )
    expect(doc(body), "t", "input mapping without a target", marker='source="=a"')


def test_multi_instance_without_collection() -> None:
    body = (
        OK_START
        + """
  <bpmn:task id="t">
    <bpmn:multiInstanceLoopCharacteristics />
  </bpmn:task>
"""
    )
    expect(doc(body), "t", "neither an inputCollection nor a loopCardinality", marker="multiInstance")


def test_multi_instance_output_collection_without_element() -> None:
    body = (
        OK_START
        + """
  <bpmn:task id="t">
    <bpmn:multiInstanceLoopCharacteristics><bpmn:extensionElements>
      <zeebe:loopCharacteristics inputCollection="=xs" outputCollection="ys" />
    </bpmn:extensionElements></bpmn:multiInstanceLoopCharacteristics>
  </bpmn:task>
"""
    )
    expect(doc(body), "t", "both outputCollection and outputElement", marker="outputCollection")


# --- boundaries --------------------------------------------------------------------------


def test_boundary_attached_to_non_activity() -> None:
    body = (
        OK_START
        + """
  <bpmn:exclusiveGateway id="gw" />
  <bpmn:boundaryEvent id="b" attachedToRef="gw">
    <bpmn:timerEventDefinition><bpmn:timeDuration>PT1M</bpmn:timeDuration></bpmn:timerEventDefinition>
  </bpmn:boundaryEvent>
"""
    )
    expect(doc(body), "b", "attached to 'gw', which is not an activity")


def test_boundary_attached_to_unknown_id() -> None:
    body = (
        OK_START
        + """
  <bpmn:boundaryEvent id="b" attachedToRef="ghost">
    <bpmn:timerEventDefinition><bpmn:timeDuration>PT1M</bpmn:timeDuration></bpmn:timerEventDefinition>
  </bpmn:boundaryEvent>
"""
    )
    expect(doc(body), "b", "attached to 'ghost', which does not exist")


def test_boundary_without_event_definition() -> None:
    body = OK_START + service("t") + '\n  <bpmn:boundaryEvent id="b" attachedToRef="t" />\n'
    expect(doc(body), "b", "has no event definition, which is not allowed on a boundary event")


def test_non_interrupting_error_boundary() -> None:
    body = (
        OK_START
        + service("t")
        + """
  <bpmn:boundaryEvent id="b" attachedToRef="t" cancelActivity="false"><bpmn:errorEventDefinition />
  </bpmn:boundaryEvent>
"""
    )
    expect(doc(body), "b", "catches an error and must interrupt")


def test_compensation_boundary_without_handler() -> None:
    body = (
        OK_START
        + service("t")
        + """
  <bpmn:boundaryEvent id="b" attachedToRef="t"><bpmn:compensateEventDefinition /></bpmn:boundaryEvent>
"""
    )
    expect(doc(body), "b", "no association to a compensation handler")


# --- gateways ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "word"), [("exclusiveGateway", "exclusive"), ("inclusiveGateway", "inclusive")]
)
def test_gateway_default_not_outgoing(tag: str, word: str) -> None:
    body = f"""
  <bpmn:startEvent id="start" />
  <bpmn:{tag} id="gw" default="x" />
  <bpmn:endEvent id="end" />
  <bpmn:endEvent id="end2" />
  <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="gw" />
  <bpmn:sequenceFlow id="f1" sourceRef="gw" targetRef="end"><bpmn:conditionExpression>=a</bpmn:conditionExpression>
  </bpmn:sequenceFlow>
  <bpmn:sequenceFlow id="x" sourceRef="start" targetRef="end2" />
"""
    expect(
        doc(body), "gw", f"{word} gateway 'gw' has a default flow 'x' that is not one of its outgoing flows"
    )


def test_exclusive_gateway_flow_without_condition() -> None:
    body = """
  <bpmn:startEvent id="start" />
  <bpmn:exclusiveGateway id="gw" />
  <bpmn:endEvent id="end" />
  <bpmn:endEvent id="end2" />
  <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="gw" />
  <bpmn:sequenceFlow id="f1" sourceRef="gw" targetRef="end"><bpmn:conditionExpression>=a</bpmn:conditionExpression>
  </bpmn:sequenceFlow>
  <bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="end2" />
"""
    expect(doc(body), "gw", "outgoing flow 'f2' with neither a condition nor being the default")


def test_default_flow_with_condition() -> None:
    body = """
  <bpmn:startEvent id="start" />
  <bpmn:exclusiveGateway id="gw" default="f1" />
  <bpmn:endEvent id="end" />
  <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="gw" />
  <bpmn:sequenceFlow id="f1" sourceRef="gw" targetRef="end"><bpmn:conditionExpression>=a</bpmn:conditionExpression>
  </bpmn:sequenceFlow>
"""
    expect(doc(body), "gw", "default flow 'f1' with a condition")


def test_activity_default_not_outgoing() -> None:
    xml = doc(OK_START + '\n  <bpmn:task id="t" default="f_ok" />\n')
    expect(xml, "t", "task 't' has a default flow 'f_ok' that is not one of its outgoing flows")


def test_conditional_flow_out_of_parallel_gateway() -> None:
    body = """
  <bpmn:startEvent id="start" />
  <bpmn:parallelGateway id="fork" />
  <bpmn:endEvent id="end" />
  <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="fork" />
  <bpmn:sequenceFlow id="f1" sourceRef="fork" targetRef="end"><bpmn:conditionExpression>=a</bpmn:conditionExpression>
  </bpmn:sequenceFlow>
"""
    defs = parse_bpmn(doc(body))  # deploys: the specification says the condition is ignored
    [warning] = defs.warnings
    assert warning.element_id == "fork" and warning.line is not None
    assert "conditional outgoing flow 'f1': a parallel gateway ignores conditions" in warning.message


def test_event_based_gateway_with_bad_target() -> None:
    body = """
  <bpmn:startEvent id="start" />
  <bpmn:eventBasedGateway id="ebg" />
  <bpmn:task id="t" />
  <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition><bpmn:timeDuration>PT1M</bpmn:timeDuration>
  </bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
  <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="ebg" />
  <bpmn:sequenceFlow id="f1" sourceRef="ebg" targetRef="t" />
  <bpmn:sequenceFlow id="f2" sourceRef="ebg" targetRef="wait" />
"""
    issue = expect(doc(body), "ebg", "leads via 'f1' to task 't', which is not an intermediate catch event")
    assert "receive task" in issue.message


def test_event_based_gateway_with_one_outgoing_flow() -> None:
    body = """
  <bpmn:startEvent id="start" />
  <bpmn:eventBasedGateway id="ebg" />
  <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition><bpmn:timeDuration>PT1M</bpmn:timeDuration>
  </bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
  <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="ebg" />
  <bpmn:sequenceFlow id="f2" sourceRef="ebg" targetRef="wait" />
"""
    expect(doc(body), "ebg", "needs at least two outgoing flows")


# --- events ------------------------------------------------------------------------------


def timer_catch(kind: str, value: str) -> str:
    return doc(
        OK_START
        + f"""
  <bpmn:intermediateCatchEvent id="timer">
    <bpmn:timerEventDefinition>
      <bpmn:{kind}>{value}</bpmn:{kind}>
    </bpmn:timerEventDefinition>
  </bpmn:intermediateCatchEvent>
"""
    )


@pytest.mark.parametrize(
    ("kind", "value", "fragment"),
    [
        ("timeDuration", "15 minutes", "is not an ISO 8601 duration"),
        ("timeDuration", "PT", "is not an ISO 8601 duration"),
        ("timeDate", "tomorrow", "is not an ISO 8601 date-time"),
        ("timeCycle", "R5/soon", "is not an ISO 8601 repeating interval"),
        ("timeCycle", "R5/PT1M/PT2M", "exactly one duration"),
        ("timeCycle", "*/5 * * * *", "cron expression with 6 fields"),
        ("timeCycle", "0 0 25 * * *", "is not a valid cron expression"),
    ],
)
def test_bad_static_timer(kind: str, value: str, fragment: str) -> None:
    expect(timer_catch(kind, value), "timer", fragment, marker=f"<bpmn:{kind}>")


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("timeDuration", "P1DT2H30M"),
        ("timeDuration", "=duration"),
        ("timeDate", "2030-12-31T23:59:59Z"),
        ("timeDate", "2030-12-31T23:59:59+02:00[Europe/Berlin]"),
        ("timeDate", "=deadline"),
    ],
)
def test_good_timers_pass(kind: str, value: str) -> None:
    parse_bpmn(timer_catch(kind, value))


@pytest.mark.parametrize(
    "value", ["R/PT10S", "R3/2030-01-01T00:00:00Z/P1D", "0 0/15 8-18 * * MON-FRI", "@daily"]
)
def test_good_cycles_pass(value: str) -> None:
    xml = doc(f"""
  <bpmn:startEvent id="start"><bpmn:timerEventDefinition><bpmn:timeCycle>{value}</bpmn:timeCycle>
  </bpmn:timerEventDefinition></bpmn:startEvent>
""")
    parse_bpmn(xml)


def test_timer_without_value() -> None:
    body = (
        OK_START
        + """
  <bpmn:intermediateCatchEvent id="timer">
    <bpmn:timerEventDefinition />
  </bpmn:intermediateCatchEvent>
"""
    )
    expect(
        doc(body), "timer", "has no timeDuration, timeDate or timeCycle", marker="<bpmn:timerEventDefinition"
    )


def test_error_end_event_without_error_code() -> None:
    body = OK_START + '\n  <bpmn:endEvent id="fail"><bpmn:errorEventDefinition /></bpmn:endEvent>\n'
    expect(doc(body), "fail", "error end event 'fail' has no error code")


def test_error_end_event_referring_to_error_without_code() -> None:
    body = (
        OK_START + '\n  <bpmn:endEvent id="fail"><bpmn:errorEventDefinition errorRef="e" /></bpmn:endEvent>\n'
    )
    expect(
        doc(body, '<bpmn:error id="e" name="no code" />'), "fail", "error end event 'fail' has no error code"
    )


def test_escalation_throw_without_code() -> None:
    body = OK_START + '\n  <bpmn:endEvent id="esc"><bpmn:escalationEventDefinition /></bpmn:endEvent>\n'
    expect(doc(body), "esc", "throws an escalation without an escalation code")


@pytest.mark.parametrize(
    ("definition", "fragment"),
    [
        ('<bpmn:errorEventDefinition errorRef="nope" />', "refers to error 'nope', which is not defined"),
        ('<bpmn:signalEventDefinition signalRef="nope" />', "refers to signal 'nope', which is not defined"),
        ('<bpmn:escalationEventDefinition escalationRef="nope" />', "refers to escalation 'nope'"),
        (
            '<bpmn:messageEventDefinition messageRef="nope" />',
            "refers to message 'nope', which is not defined",
        ),
    ],
)
def test_dangling_references(definition: str, fragment: str) -> None:
    body = (
        OK_START
        + service("t")
        + f'\n  <bpmn:boundaryEvent id="b" attachedToRef="t">{definition}</bpmn:boundaryEvent>\n'
    )
    expect(doc(body), "b", fragment)


def test_dangling_participant_process_ref() -> None:
    extra = (
        '<bpmn:collaboration id="c"><bpmn:participant id="pool" processRef="ghost" /></bpmn:collaboration>'
    )
    expect(doc(OK_START, extra), "pool", "participant 'pool' refers to process 'ghost', which is not defined")


def test_link_throw_without_catch() -> None:
    body = (
        OK_START
        + """
  <bpmn:intermediateThrowEvent id="jump"><bpmn:linkEventDefinition name="A" /></bpmn:intermediateThrowEvent>
  <bpmn:intermediateCatchEvent id="land"><bpmn:linkEventDefinition name="B" /></bpmn:intermediateCatchEvent>
  <bpmn:endEvent id="end2" />
  <bpmn:sequenceFlow id="f_l" sourceRef="land" targetRef="end2" />
"""
    )
    expect(doc(body), "jump", "link throw event 'jump' has no link catch event named 'A' in the same scope")


def test_link_catch_in_another_scope_does_not_match() -> None:
    body = (
        OK_START
        + """
  <bpmn:intermediateThrowEvent id="jump"><bpmn:linkEventDefinition name="A" /></bpmn:intermediateThrowEvent>
  <bpmn:subProcess id="sub">
    <bpmn:startEvent id="ss" />
    <bpmn:intermediateCatchEvent id="land"><bpmn:linkEventDefinition name="A" /></bpmn:intermediateCatchEvent>
  </bpmn:subProcess>
"""
    )
    expect(doc(body), "jump", "no link catch event named 'A'")


def test_event_definition_not_allowed_here() -> None:
    body = (
        OK_START
        + '\n  <bpmn:intermediateCatchEvent id="c"><bpmn:terminateEventDefinition /></bpmn:intermediateCatchEvent>\n'
    )
    expect(
        doc(body), "c", "a terminate event definition, which is not allowed on an intermediate catch event"
    )


def test_two_event_definitions() -> None:
    catch = """
  <bpmn:intermediateCatchEvent id="c" parallelMultiple="true">
    <bpmn:timerEventDefinition><bpmn:timeDuration>PT1M</bpmn:timeDuration></bpmn:timerEventDefinition>
    <bpmn:signalEventDefinition signalRef="s" />
  </bpmn:intermediateCatchEvent>
"""
    [process] = parse_bpmn(doc(OK_START + catch, '<bpmn:signal id="s" name="x" />')).processes.values()
    node = process.nodes["c"]
    assert isinstance(node, Event) and isinstance(node.trigger, MultipleTrigger)
    assert node.trigger.parallel and len(node.trigger.triggers) == 2
    start = """
  <bpmn:startEvent id="c2">
    <bpmn:timerEventDefinition><bpmn:timeDuration>PT1M</bpmn:timeDuration></bpmn:timerEventDefinition>
    <bpmn:signalEventDefinition signalRef="s" />
  </bpmn:startEvent>
"""
    [process] = parse_bpmn(doc(OK_START + start, '<bpmn:signal id="s" name="x" />')).processes.values()
    started = process.nodes["c2"]
    assert isinstance(started, Event) and isinstance(started.trigger, MultipleTrigger)
    assert not started.trigger.parallel and len(started.trigger.triggers) == 2
    parallel_start = start.replace('<bpmn:startEvent id="c2">', '<bpmn:startEvent id="c2" parallelMultiple="true">')
    expect(doc(OK_START + parallel_start, '<bpmn:signal id="s" name="x" />'), "c2", "is parallel multiple")
    error_catch = catch.replace('<bpmn:signalEventDefinition signalRef="s" />', "<bpmn:errorEventDefinition />")
    expect(doc(OK_START + error_catch), "c", "one of them error")


# --- unsupported and unknown -------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [
        ("callChoreography", "choreographies are not supported"),
        ("choreographyTask", "choreographies are not supported"),
    ],
)
def test_unsupported_elements(tag: str, fragment: str) -> None:
    xml = doc(OK_START + f'\n  <bpmn:{tag} id="x" />\n')
    issue = expect(xml, "x", fragment)
    assert f"'{tag}'" in issue.message


def test_cancel_events_belong_to_a_transaction() -> None:
    body = (
        OK_START
        + service("t")
        + """
  <bpmn:boundaryEvent id="b" attachedToRef="t">
    <bpmn:cancelEventDefinition />
  </bpmn:boundaryEvent>
"""
    )
    expect(doc(body), "b", "cancel event 'b' must be attached to a transaction")


def test_unknown_flow_node_type() -> None:
    xml = doc(OK_START + '\n  <bpmn:fooTask id="foo" />\n')
    expect(xml, "foo", "'fooTask' 'foo' in process 'p' is not a BPMN flow node natsflow can run")


def test_no_executable_process() -> None:
    xml = doc(OK_START, executable="false")
    issue = expect(xml, "defs", "no executable process", marker="<bpmn:definitions")
    assert len(issues_of(xml)) == 1
    assert issue.line == 2


def test_problems_of_non_executable_process_are_ignored() -> None:
    xml = doc(OK_START + '\n  <bpmn:serviceTask id="job" />\n', executable="false")
    extra = '<bpmn:process id="q" isExecutable="true"><bpmn:startEvent id="qs" /></bpmn:process>'
    defs = parse_bpmn(xml.replace("</bpmn:definitions>", extra + "</bpmn:definitions>"))
    assert not defs.processes["p"].executable and defs.processes["q"].executable


# --- expressions -------------------------------------------------------------------------


def test_feel_syntax_error_in_condition() -> None:
    body = """
  <bpmn:startEvent id="start" />
  <bpmn:inclusiveGateway id="gw" />
  <bpmn:endEvent id="end" />
  <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="gw" />
  <bpmn:sequenceFlow id="bad" sourceRef="gw" targetRef="end">
    <bpmn:conditionExpression>=amount &gt;</bpmn:conditionExpression>
  </bpmn:sequenceFlow>
"""
    issue = expect(
        doc(body),
        "bad",
        "the condition of sequence flow 'bad' is not a valid FEEL expression",
        marker="<bpmn:conditionExpression>",
    )
    assert "column" in issue.message


def test_feel_syntax_error_in_attribute() -> None:
    body = (
        OK_START
        + """
  <bpmn:serviceTask id="job">
    <bpmn:extensionElements><zeebe:taskDefinition type="=if then" /></bpmn:extensionElements>
  </bpmn:serviceTask>
"""
    )
    expect(
        doc(body),
        "job",
        "the job type of service task 'job' is not a valid FEEL expression",
        marker="zeebe:taskDefinition",
    )


def test_empty_expression() -> None:
    body = (
        OK_START
        + """
  <bpmn:serviceTask id="job">
    <bpmn:extensionElements><zeebe:taskDefinition type="=" /></bpmn:extensionElements>
  </bpmn:serviceTask>
"""
    )
    expect(doc(body), "job", "is an empty expression", marker="zeebe:taskDefinition")


def test_bad_boolean_attribute() -> None:
    xml = doc(OK_START + '\n  <bpmn:task id="t" isForCompensation="maybe" />\n')
    expect(xml, "t", "isForCompensation='maybe', which is neither 'true' nor 'false'")


# --- all at once -------------------------------------------------------------------------


def test_every_problem_is_reported() -> None:
    body = """
  <bpmn:startEvent id="start" />
  <bpmn:serviceTask id="job" />
  <bpmn:receiveTask id="wait" />
  <bpmn:callChoreography id="cx" />
  <bpmn:sequenceFlow id="f1" sourceRef="start" />
  <bpmn:sequenceFlow id="f2" sourceRef="start" targetRef="ghost" />
  <bpmn:endEvent id="fail"><bpmn:errorEventDefinition /></bpmn:endEvent>
"""
    found = issues_of(doc(body))
    ids = {issue.element_id for issue in found}
    assert {"job", "wait", "cx", "f1", "f2", "fail"} <= ids
    assert all(issue.line is not None for issue in found)
    with pytest.raises(BpmnValidationError, match=r"invalid BPMN \(\d+ problems\)") as info:
        parse_bpmn(doc(body), name="many.bpmn")
    assert info.value.source == "many.bpmn"
    assert str(info.value).startswith("many.bpmn: ")


# --- further rules -----------------------------------------------------------------------


def test_duplicate_link_catch_names() -> None:
    body = (
        OK_START
        + """
  <bpmn:intermediateCatchEvent id="land1"><bpmn:linkEventDefinition name="A" /></bpmn:intermediateCatchEvent>
  <bpmn:intermediateCatchEvent id="land2"><bpmn:linkEventDefinition name="A" /></bpmn:intermediateCatchEvent>
"""
    )
    expect(doc(body), "land2", "uses the link name 'A' of 'land1' in the same scope")


def test_link_event_without_name() -> None:
    body = (
        OK_START
        + '\n  <bpmn:intermediateCatchEvent id="land"><bpmn:linkEventDefinition /></bpmn:intermediateCatchEvent>\n'
    )
    expect(doc(body), "land", "is a link event without a name", marker="<bpmn:linkEventDefinition")


def test_compensation_handler_with_sequence_flows() -> None:
    body = """
  <bpmn:startEvent id="start" />
  <bpmn:task id="undo" isForCompensation="true" />
  <bpmn:sequenceFlow id="f" sourceRef="start" targetRef="undo" />
"""
    expect(doc(body), "undo", "compensation handler task 'undo' must not have incoming or outgoing")


def test_compensation_association_to_non_handler() -> None:
    body = (
        OK_START
        + service("t")
        + """
  <bpmn:boundaryEvent id="b" attachedToRef="t"><bpmn:compensateEventDefinition /></bpmn:boundaryEvent>
  <bpmn:task id="plain" />
  <bpmn:association id="a" sourceRef="b" targetRef="plain" />
"""
    )
    expect(doc(body), "b", "points to 'plain', which is not isForCompensation='true'")


def test_compensation_of_unknown_activity() -> None:
    body = (
        OK_START
        + """
  <bpmn:intermediateThrowEvent id="comp"><bpmn:compensateEventDefinition activityRef="ghost" />
  </bpmn:intermediateThrowEvent>
"""
    )
    expect(doc(body), "comp", "compensates 'ghost', which is not an activity of this process")


def test_non_interrupting_error_start_in_event_subprocess() -> None:
    body = (
        OK_START
        + """
  <bpmn:subProcess id="esp" triggeredByEvent="true">
    <bpmn:startEvent id="err" isInterrupting="false"><bpmn:errorEventDefinition /></bpmn:startEvent>
  </bpmn:subProcess>
"""
    )
    expect(doc(body), "err", "catches an error and must be interrupting")


def test_error_start_event_on_process_level() -> None:
    body = '\n  <bpmn:startEvent id="err"><bpmn:errorEventDefinition /></bpmn:startEvent>\n'
    expect(doc(body), "err", "an error event definition, which is not allowed on a process start event")


def test_message_throw_without_job_or_message() -> None:
    body = OK_START + '\n  <bpmn:endEvent id="send"><bpmn:messageEventDefinition /></bpmn:endEvent>\n'
    expect(doc(body), "send", "throws a message but has neither a zeebe:taskDefinition nor a message")


def test_standard_loop_without_condition_or_maximum() -> None:
    body = OK_START + '\n  <bpmn:task id="t"><bpmn:standardLoopCharacteristics /></bpmn:task>\n'
    expect(doc(body), "t", "standard loop with neither loopCondition nor loopMaximum", marker="standardLoop")


def test_more_than_one_task_definition() -> None:
    body = (
        OK_START
        + """
  <bpmn:serviceTask id="job"><bpmn:extensionElements>
    <zeebe:taskDefinition type="a" />
    <zeebe:taskDefinition type="b" />
  </bpmn:extensionElements></bpmn:serviceTask>
"""
    )
    expect(doc(body), "job", "has more than one zeebe:taskDefinition", marker='type="b"')


def test_io_mapping_target_is_not_a_name() -> None:
    body = (
        OK_START
        + """
  <bpmn:task id="t"><bpmn:extensionElements><zeebe:ioMapping>
    <zeebe:output source="=a" target="=b" />
  </zeebe:ioMapping></bpmn:extensionElements></bpmn:task>
"""
    )
    expect(doc(body), "t", "whose target '=b' is not a variable name", marker='target="=b"')


def test_header_without_key() -> None:
    body = (
        OK_START
        + """
  <bpmn:task id="t"><bpmn:extensionElements><zeebe:taskHeaders>
    <zeebe:header value="v" />
  </zeebe:taskHeaders></bpmn:extensionElements></bpmn:task>
"""
    )
    expect(doc(body), "t", "has a task header without a key", marker='value="v"')


def test_bad_due_date() -> None:
    body = (
        OK_START
        + """
  <bpmn:userTask id="u"><bpmn:extensionElements>
    <zeebe:taskSchedule dueDate="next week" />
  </bpmn:extensionElements></bpmn:userTask>
"""
    )
    expect(
        doc(body),
        "u",
        "the due date of user task 'u' 'next week' is not an ISO 8601 date-time",
        marker="dueDate",
    )


def test_call_activity_binding_by_version_tag_without_tag() -> None:
    body = (
        OK_START
        + """
  <bpmn:callActivity id="call"><bpmn:extensionElements>
    <zeebe:calledElement processId="child" bindingType="versionTag" />
  </bpmn:extensionElements></bpmn:callActivity>
"""
    )
    expect(doc(body), "call", "binds by versionTag but has no versionTag", marker="bindingType")


def test_element_outside_bpmn_namespace_in_default_namespace_document() -> None:
    xml = doc(OK_START + '\n  <serviceTask xmlns="" id="bare" />\n')
    expect(xml, "bare", "'serviceTask' 'bare' is not in the BPMN namespace")


def test_unknown_event_definition_reference() -> None:
    body = (
        OK_START
        + """
  <bpmn:intermediateCatchEvent id="c"><bpmn:eventDefinitionRef>nope</bpmn:eventDefinitionRef>
  </bpmn:intermediateCatchEvent>
"""
    )
    expect(
        doc(body), "c", "refers to event definition 'nope', which is not defined", marker="eventDefinitionRef"
    )


def test_global_event_definition_reference() -> None:
    body = (
        OK_START
        + """
  <bpmn:intermediateCatchEvent id="c"><bpmn:eventDefinitionRef>td</bpmn:eventDefinitionRef>
  </bpmn:intermediateCatchEvent>
"""
    )
    extra = '<bpmn:timerEventDefinition id="td"><bpmn:timeDuration>PT5M</bpmn:timeDuration></bpmn:timerEventDefinition>'
    process = parse_bpmn(doc(body, extra)).processes["p"]
    assert process.nodes["c"].trigger.kind == "duration"  # type: ignore[attr-defined]
