"""Scenarios whose instance records are kept as golden files, one directory per record version.

Each scenario deploys its models, starts an instance, lets registered workers complete some
jobs, and is captured once the engine is idle: the record then holds the wait states of that
moment (jobs, user tasks, timers, messages, signals, called instances, multi-instance bodies,
loops, listeners, joins, compensation, incidents). ``make_golden.py`` writes the captures;
``tests/engine/test_record_migration.py`` decodes each one with the current code and continues
the instance to completion, first with the scenario's ``script`` (element ids whose wait is
satisfied, in order), then by satisfying whatever waits remain.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))

from modelkit import (
    boundary,
    chain,
    event,
    flow,
    message_def,
    message_global,
    model,
    service,
    signal_def,
    signal_global,
    timer,
    user_task,
)

TENANT = "default"
START = "2026-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class Scenario:
    name: str
    models: tuple[tuple[str, str], ...]  # (process id, BPMN XML), deployed in order
    process: str  # the process started
    variables: dict[str, Any] = field(default_factory=dict)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)  # job type -> result variables
    capture: str = "started"  # "started": the started instance; else the process id of a called one
    script: tuple[str, ...] = ()  # element ids to satisfy first when continuing
    fixes: dict[str, Any] = field(default_factory=dict)  # variables that resolve the incidents
    expect: dict[str, Any] = field(default_factory=dict)  # some variables of the completed instance
    reached: tuple[str, ...] = ()  # elements completed after the capture, in this order (others between)


def _p(pid: str, body: str, globals_: str = "") -> tuple[str, str]:
    return (pid, model(pid, body, globals_=globals_))


_S, _E = '<bpmn:startEvent id="s" />', '<bpmn:endEvent id="e" />'

_IO = (
    '<zeebe:ioMapping><zeebe:input source="=amount * 2" target="doubled" />'
    '<zeebe:output source="=doubled + 1" target="total" /></zeebe:ioMapping>'
)

_MI = (
    '<bpmn:serviceTask id="each"><bpmn:extensionElements><zeebe:taskDefinition type="each" />'
    "</bpmn:extensionElements><bpmn:multiInstanceLoopCharacteristics{seq}><bpmn:extensionElements>"
    '<zeebe:loopCharacteristics inputCollection="=items" inputElement="item" outputCollection="results" '
    'outputElement="=item * 10" /></bpmn:extensionElements></bpmn:multiInstanceLoopCharacteristics>'
    "</bpmn:serviceTask>"
)

_LOOP = (
    '<bpmn:serviceTask id="poll"><bpmn:extensionElements><zeebe:taskDefinition type="poll" />'
    '</bpmn:extensionElements><bpmn:standardLoopCharacteristics testBefore="false" loopMaximum="3">'
    '<bpmn:loopCondition xsi:type="bpmn:tFormalExpression">=true</bpmn:loopCondition>'
    "</bpmn:standardLoopCharacteristics></bpmn:serviceTask>"
)


def _compensable(task_id: str, undo_id: str) -> str:
    return (
        service(task_id, task_id)
        + boundary(f"cb_{task_id}", task_id, "<bpmn:compensateEventDefinition />")
        + service(undo_id, undo_id).replace(f'id="{undo_id}"', f'id="{undo_id}" isForCompensation="true"')
        + f'<bpmn:association id="as_{task_id}" associationDirection="One" sourceRef="cb_{task_id}" '
        f'targetRef="{undo_id}" />'
    )


_COMPENSATION = _p(
    "compensation",
    _S + _compensable("book_hotel", "cancel_hotel") + _compensable("book_flight", "cancel_flight")
    + service("review", "review")
    + event("intermediateThrowEvent", "undo", "<bpmn:compensateEventDefinition />")
    + _E + chain("s", "book_hotel", "book_flight", "review", "undo", "e"),
)

_MSG = message_global("Msg_pay", "payment", "=orderId") + message_global("Msg_stop", "stop", "=orderId")
_SIG = signal_global("Sig_go", "go")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "job_with_mappings",
        (_p("job", _S + service("work", "work", extra=_IO) + _E + chain("s", "work", "e")),),
        "job",
        {"amount": 20},
        expect={"total": 41},
    ),
    Scenario("user_task", (_p("approval", _S + user_task("approve") + _E + chain("s", "approve", "e")),), "approval"),
    Scenario(
        "timer_catch",
        (_p("wait", _S + event("intermediateCatchEvent", "pause", timer("Duration", "PT1H")) + _E
            + chain("s", "pause", "e")),),
        "wait",
    ),
    Scenario(
        "message_catch_and_receive_task",
        (_p("pay", _S + event("intermediateCatchEvent", "paid", message_def("Msg_pay"))
            + '<bpmn:receiveTask id="confirm" messageRef="Msg_stop" />' + _E
            + chain("s", "paid", "confirm", "e"), _MSG),),
        "pay",
        {"orderId": "A-1"},
        script=("paid",),
    ),
    Scenario(
        "signal_catch",
        (_p("sig", _S + event("intermediateCatchEvent", "go", signal_def("Sig_go")) + _E + chain("s", "go", "e"),
            _SIG),),
        "sig",
    ),
    Scenario(
        "boundaries",
        (_p("guarded", _S + service("work", "work")
            + boundary("tick", "work", timer("Cycle", "R3/PT10M"), interrupting=False)
            + boundary("stop", "work", message_def("Msg_stop"))
            + boundary("halt", "work", signal_def("Sig_go"))
            + '<bpmn:endEvent id="e_tick" /><bpmn:endEvent id="e_stop" /><bpmn:endEvent id="e_halt" />'
            + _E + chain("s", "work", "e") + flow("f_tick", "tick", "e_tick") + flow("f_stop", "stop", "e_stop")
            + flow("f_halt", "halt", "e_halt"), _MSG + _SIG),),
        "guarded",
        {"orderId": "B-2"},
        script=("tick", "tick", "work"),
        reached=("tick", "e_tick", "tick", "e_tick", "work", "e"),
    ),
    Scenario(
        "event_gateway",
        (_p("ebg", _S + '<bpmn:eventBasedGateway id="gw" />'
            + event("intermediateCatchEvent", "late", timer("Duration", "PT5M"))
            + event("intermediateCatchEvent", "paid", message_def("Msg_pay"))
            + _E + '<bpmn:endEvent id="e2" />' + chain("s", "gw") + flow("f_late", "gw", "late")
            + flow("f_paid", "gw", "paid") + flow("f_e", "late", "e") + flow("f_e2", "paid", "e2"), _MSG),),
        "ebg",
        {"orderId": "C-3"},
        script=("paid",),
        reached=("gw", "paid", "e2"),
    ),
    Scenario(
        "event_subprocesses",
        (_p("esp", _S + user_task("ship") + _E + chain("s", "ship", "e")
            + '<bpmn:subProcess id="on_pay" triggeredByEvent="true">'
            + event("startEvent", "ps", message_def("Msg_pay"), 'isInterrupting="false"')
            + '<bpmn:endEvent id="pe" />' + chain("ps", "pe") + "</bpmn:subProcess>"
            + '<bpmn:subProcess id="on_late" triggeredByEvent="true">'
            + event("startEvent", "ls", timer("Duration", "P1D"))
            + '<bpmn:endEvent id="le" />' + chain("ls", "le") + "</bpmn:subProcess>", _MSG),),
        "esp",
        {"orderId": "D-4"},
        script=("ps", "ship"),
        reached=("ps", "pe", "on_pay", "ship", "e"),
    ),
    Scenario(
        "call_activity_parent",
        (
            _p("child", '<bpmn:startEvent id="cs" />' + service("inner", "inner") + '<bpmn:endEvent id="ce" />'
               + chain("cs", "inner", "ce")),
            _p("parent", _S + '<bpmn:callActivity id="call"><bpmn:extensionElements>'
               '<zeebe:calledElement processId="child" /></bpmn:extensionElements></bpmn:callActivity>'
               + _E + chain("s", "call", "e")),
        ),
        "parent",
        {"n": 1},
    ),
    Scenario(
        "call_activity_child",
        (
            _p("child", '<bpmn:startEvent id="cs" />' + service("inner", "inner") + '<bpmn:endEvent id="ce" />'
               + chain("cs", "inner", "ce")),
            _p("parent", _S + '<bpmn:callActivity id="call"><bpmn:extensionElements>'
               '<zeebe:calledElement processId="child" /></bpmn:extensionElements></bpmn:callActivity>'
               + _E + chain("s", "call", "e")),
        ),
        "parent",
        {"n": 1},
        capture="child",
    ),
    Scenario(
        "multi_instance_parallel",
        (_p("mi", _S + _MI.format(seq="") + _E + chain("s", "each", "e")),),
        "mi",
        {"items": [3, 1, 2]},
        expect={"results": [30, 10, 20]},
    ),
    Scenario(
        "multi_instance_sequential",
        (_p("mis", _S + _MI.format(seq=' isSequential="true"') + _E + chain("s", "each", "e")),),
        "mis",
        {"items": [5, 6]},
        expect={"results": [50, 60]},
    ),
    Scenario("standard_loop", (_p("loop", _S + _LOOP + _E + chain("s", "poll", "e")),), "loop"),
    Scenario(
        "parallel_join",
        (_p("par", _S + '<bpmn:parallelGateway id="fork" />' + service("a", "a") + service("b", "b")
            + '<bpmn:parallelGateway id="join" />' + _E + chain("s", "fork") + flow("f1", "fork", "a")
            + flow("f2", "fork", "b") + flow("f3", "a", "join") + flow("f4", "b", "join") + chain("join", "e")),),
        "par",
        workers={"a": {}},
    ),
    Scenario(
        "inclusive_join",
        (_p("inc", _S + '<bpmn:inclusiveGateway id="fork" />' + service("a", "a") + service("b", "b")
            + '<bpmn:inclusiveGateway id="join" />' + _E + chain("s", "fork")
            + flow("f1", "fork", "a", "=true") + flow("f2", "fork", "b", "=true") + flow("f3", "a", "join")
            + flow("f4", "b", "join") + chain("join", "e")),),
        "inc",
        workers={"a": {}},
    ),
    Scenario("compensation_recorded", (_COMPENSATION,), "compensation",
             workers={"book_hotel": {}, "book_flight": {}},
             reached=("review", "cancel_flight", "cancel_hotel", "undo", "e")),
    Scenario("compensation_running", (_COMPENSATION,), "compensation",
             workers={"book_hotel": {}, "book_flight": {}, "review": {}},
             reached=("cancel_flight", "cancel_hotel", "undo", "e")),
    Scenario(
        "incident_job_type",
        (_p("broken", _S + service("work", "=jobType") + _E + chain("s", "work", "e")),),
        "broken",
        fixes={"jobType": "work"},
        expect={"jobType": "work"},
    ),
    Scenario(
        "incident_no_flow",
        (_p("stuck", _S + service("work", "work") + _E + '<bpmn:endEvent id="e2" />' + chain("s", "work")
            + flow("f_yes", "work", "e", "=go = true") + flow("f_no", "work", "e2", "=go = false")),),
        "stuck",
        {"go": None},
        workers={"work": {}},
        fixes={"go": True},
        reached=("e",),
    ),
    Scenario(
        "incident_called_element",
        (
            _p("child", '<bpmn:startEvent id="cs" />' + service("inner", "inner") + '<bpmn:endEvent id="ce" />'
               + chain("cs", "inner", "ce")),
            _p("caller", _S + '<bpmn:callActivity id="call"><bpmn:extensionElements>'
               '<zeebe:calledElement processId="=target" /></bpmn:extensionElements></bpmn:callActivity>'
               + _E + chain("s", "call", "e")),
        ),
        "caller",
        fixes={"target": "child"},
    ),
)
