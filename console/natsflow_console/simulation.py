"""Simulation: run a model with mocked jobs, scripted user tasks and events on a virtual clock.

The engine itself runs the simulation: :class:`natsflow.testing.ProcessTestEngine` on its own
embedded nats-server (never the platform's NATS, its instances or its workers), with its
virtual clock. A scenario (a JSON or YAML document, :func:`parse_scenario`) says::

    process: order                 # optional when the model has one executable process
    variables: {amount: 10}        # start variables
    instances: 1                   # how many instances (random mocks differ between them)
    seed: 1                        # the random choices repeat with the same seed
    tasks:                         # per job type: a mock, or a list to choose from by weight
      charge: {complete: {charged: true}}
      ship: [{complete: {}, weight: 3}, {error: {code: OUT_OF_STOCK}}, {fail: "carrier down"}]
    userTasks:                     # per element id ("*": any other), completed at once
      approve: {complete: {approved: true}}
    events:                        # on the virtual clock, from the start
      - {at: PT1H, message: {name: paid, correlationKey: o-1, variables: {}}}
      - {at: PT2H, signal: {name: cancel}}
    until: P30D                    # timers fire on their schedule up to this time

A job type without a mock completes with no variables. :func:`simulate` returns the path of
each instance, the counts per element over all instances, the final state and variables, and
the history of the first instance (the records a replay steps through).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import isodate
import msgspec
from natsflow_engine import layout
from natsflow_engine.bpmn.model import (
    Activity,
    Definitions,
    Event,
    MessageTrigger,
    SignalTrigger,
    TimerTrigger,
)
from natsflow_engine.errors import BpmnError, InvalidInputError, JobFailure
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import parse_and_check
from natsflow_engine.testing import ProcessTestEngine
from natsflow_engine.worker import Job

__all__ = [
    "MAX_INSTANCES",
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "model_outline",
    "parse_scenario",
    "simulate",
]

MAX_INSTANCES = 10_000
MAX_EVENTS = 1_000
MAX_MOCKS = 100
MAX_UNTIL = timedelta(days=3660)
MAX_ROUNDS = 100_000
START = datetime(2026, 1, 1, tzinfo=UTC)
"""Virtual time of every simulation's start (results repeat)."""
TENANT = "simulation"
LAUNCHES = 64
"""Instances launched at once."""


ScenarioError = InvalidInputError
"""A scenario that cannot run; the message names the field (``tasks.ship[1].error.code: …``)."""


@dataclass(frozen=True)
class Mock:
    kind: Literal["complete", "error", "fail"]
    variables: dict[str, Any] = field(default_factory=dict)
    code: str = ""
    message: str = ""
    weight: float = 1.0

    def document(self) -> dict[str, Any]:
        match self.kind:
            case "complete":
                return {"complete": self.variables}
            case "error":
                return {"error": {"code": self.code, "message": self.message, "variables": self.variables}}
            case _:
                return {"fail": self.message}


@dataclass(frozen=True)
class ScenarioEvent:
    at: timedelta
    kind: Literal["message", "signal", "time"]
    name: str = ""
    correlation_key: str = ""
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scenario:
    process: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    instances: int = 1
    seed: int = 1
    tasks: dict[str, list[Mock]] = field(default_factory=dict)
    user_tasks: dict[str, list[Mock]] = field(default_factory=dict)
    events: list[ScenarioEvent] = field(default_factory=list)
    until: timedelta = timedelta(days=30)


# --- parsing ----------------------------------------------------------------------------------

_KEYS = {"process", "variables", "instances", "seed", "tasks", "userTasks", "events", "until"}


def _fail(where: str, problem: str) -> ScenarioError:
    return ScenarioError(f"{where}: {problem}")


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _fail(where, "a mapping of names to values")
    return value


def _text(value: Any, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty) or len(value) > 256:
        raise _fail(where, "a string of 1 to 256 characters")
    return value


def _duration(value: Any, where: str) -> timedelta:
    try:
        parsed = isodate.parse_duration(str(value))
    except (isodate.ISO8601Error, ValueError):
        raise _fail(where, f"an ISO 8601 duration such as PT1H, not {value!r}") from None
    delta: timedelta = parsed.totimedelta(start=START) if isinstance(parsed, isodate.Duration) else parsed
    if not timedelta(0) <= delta <= MAX_UNTIL:
        raise _fail(where, "a duration from 0 to 10 years")
    return delta


def _mock(value: Any, where: str, *, user_task: bool = False) -> Mock:
    if not isinstance(value, dict):
        raise _fail(where, "a mapping with complete, error or fail")
    weight = value.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 1_000_000:
        raise _fail(f"{where}.weight", "a positive number")
    kinds = [k for k in ("complete", "error", "fail") if k in value]
    unknown = set(value) - {"complete", "error", "fail", "weight"}
    if unknown:
        raise _fail(f"{where}.{sorted(unknown)[0]}", "unknown field (complete, error, fail, weight)")
    if len(kinds) != 1 or (user_task and kinds != ["complete"]):
        raise _fail(where, "complete" if user_task else "exactly one of complete, error, fail")
    kind = kinds[0]
    if kind == "complete":
        return Mock("complete", _object(value["complete"], f"{where}.complete"), weight=float(weight))
    if kind == "fail":
        return Mock("fail", message=_text(value["fail"], f"{where}.fail"), weight=float(weight))
    error = value["error"]
    if not isinstance(error, dict):
        raise _fail(f"{where}.error", "a mapping with code, message and variables")
    return Mock(
        "error",
        _object(error.get("variables"), f"{where}.error.variables"),
        code=_text(error.get("code"), f"{where}.error.code"),
        message=_text(error.get("message", ""), f"{where}.error.message", empty=True),
        weight=float(weight),
    )


def _mocks(value: Any, where: str, *, user_task: bool = False) -> dict[str, list[Mock]]:
    found: dict[str, list[Mock]] = {}
    for name, spec in _object(value, where).items():
        _text(name, f"{where} key")
        options = spec if isinstance(spec, list) else [spec]
        if not 1 <= len(options) <= MAX_MOCKS:
            raise _fail(f"{where}.{name}", f"1 to {MAX_MOCKS} mocks")
        found[name] = [
            _mock(o, f"{where}.{name}" + (f"[{i}]" if isinstance(spec, list) else ""), user_task=user_task)
            for i, o in enumerate(options)
        ]
    return found


def _event(value: Any, where: str) -> ScenarioEvent:
    if not isinstance(value, dict):
        raise _fail(where, "a mapping with at and message, signal or nothing (time passes)")
    unknown = set(value) - {"at", "message", "signal"}
    if unknown:
        raise _fail(f"{where}.{sorted(unknown)[0]}", "unknown field (at, message, signal)")
    if "at" not in value:
        raise _fail(f"{where}.at", "required: when, as a duration from the start (PT1H)")
    at = _duration(value["at"], f"{where}.at")
    if "message" in value and "signal" in value:
        raise _fail(where, "a message or a signal, not both")
    for kind in ("message", "signal"):
        if kind in value:
            spec = value[kind]
            if not isinstance(spec, dict):
                raise _fail(f"{where}.{kind}", "a mapping with name")
            key = spec.get("correlationKey", "") if kind == "message" else ""
            return ScenarioEvent(
                at,
                "message" if kind == "message" else "signal",
                name=_text(spec.get("name"), f"{where}.{kind}.name"),
                correlation_key=_text(str(key), f"{where}.message.correlationKey", empty=True),
                variables=_object(spec.get("variables"), f"{where}.{kind}.variables"),
            )
    return ScenarioEvent(at, "time")


def _count(value: Any, where: str, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise _fail(where, f"a whole number from 1 to {top}")
    return value


def parse_scenario(document: Any) -> Scenario:
    """A scenario from a decoded JSON/YAML document; :class:`ScenarioError` names the bad field."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise _fail("scenario", "a mapping (JSON object or YAML mapping)")
    unknown = set(document) - _KEYS
    if unknown:
        raise _fail(sorted(unknown)[0], f"unknown field (one of {', '.join(sorted(_KEYS))})")
    events = document.get("events") or []
    if not isinstance(events, list) or len(events) > MAX_EVENTS:
        raise _fail("events", f"a list of at most {MAX_EVENTS} events")
    process = document.get("process")
    seed = document.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise _fail("seed", "a whole number")
    return Scenario(
        process=None if process is None else _text(process, "process"),
        variables=_object(document.get("variables"), "variables"),
        instances=_count(document.get("instances", 1), "instances", MAX_INSTANCES),
        seed=seed,
        tasks=_mocks(document.get("tasks"), "tasks"),
        user_tasks=_mocks(document.get("userTasks"), "userTasks", user_task=True),
        events=sorted((_event(e, f"events[{i}]") for i, e in enumerate(events)), key=lambda e: e.at),
        until=_duration(document.get("until", "P30D"), "until"),
    )


def scenario_document(scenario: Scenario) -> dict[str, Any]:
    """The scenario as a document :func:`parse_scenario` reads back (to save it as a file)."""

    def mocks(table: dict[str, list[Mock]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, options in table.items():
            docs = [dict(m.document(), **({"weight": m.weight} if m.weight != 1 else {})) for m in options]
            out[name] = docs[0] if len(docs) == 1 else docs
        return out

    events: list[dict[str, Any]] = []
    for e in scenario.events:
        entry: dict[str, Any] = {"at": isodate.duration_isoformat(e.at)}
        if e.kind == "message":
            entry["message"] = {"name": e.name, "correlationKey": e.correlation_key, "variables": e.variables}
        elif e.kind == "signal":
            entry["signal"] = {"name": e.name, "variables": e.variables}
        events.append(entry)
    document: dict[str, Any] = {
        "variables": scenario.variables,
        "instances": scenario.instances,
        "seed": scenario.seed,
        "tasks": mocks(scenario.tasks),
        "userTasks": mocks(scenario.user_tasks),
        "events": events,
        "until": isodate.duration_isoformat(scenario.until),
    }
    if scenario.process:
        document = {"process": scenario.process, **document}
    return document


# --- what a model needs ------------------------------------------------------------------------


def _static(expr: Any) -> str | None:
    source = getattr(expr, "source", None)
    return source if isinstance(source, str) and source and not source.startswith("=") else None


def model_outline(defs: Definitions) -> dict[str, Any]:
    """Job types, user tasks, messages, signals and timers of the executable processes (what a
    scenario mocks or fires); expressions that only a running instance can evaluate are left out."""
    types: set[str] = set()
    users: set[str] = set()
    messages: set[str] = set()
    signals: set[str] = set()
    timers: set[str] = set()
    for process in defs.processes.values():
        if not process.executable:
            continue
        for node in process.nodes.values():
            task = getattr(node, "task", None)
            if task is not None and (kind := _static(task.type)):
                types.add(kind)
            if isinstance(node, Activity) and node.user_task is not None:
                users.add(node.id)
            trigger = node.trigger if isinstance(node, Event) else None
            if isinstance(node, Activity) and node.message is not None:
                trigger = node.message
            if isinstance(trigger, MessageTrigger) and (name := _static(trigger.name)):
                messages.add(name)
            elif isinstance(trigger, SignalTrigger) and (name := _static(trigger.name)):
                signals.add(name)
            elif isinstance(trigger, TimerTrigger):
                timers.add(node.id)
    return {
        "processes": [p.id for p in defs.processes.values() if p.executable],
        "task_types": sorted(types),
        "user_tasks": sorted(users),
        "messages": sorted(messages),
        "signals": sorted(signals),
        "timers": sorted(timers),
    }


# --- running ----------------------------------------------------------------------------------


class Action(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the simulation did to the first instance besides its jobs, in order (an exported
    test repeats it)."""

    kind: str  # user-task | advance | message | signal
    element_id: str | None = None
    variables: dict[str, Any] = {}
    seconds: float = 0.0
    name: str = ""
    correlation_key: str = ""


class InstanceOutcome(msgspec.Struct, kw_only=True):
    id: str
    state: str
    variables: dict[str, Any]
    path: list[str]
    incidents: list[dict[str, Any]]
    waiting: list[str]


class SimulationResult(msgspec.Struct, kw_only=True):
    process_id: str
    instances: int
    states: dict[str, int]
    elements: dict[str, int]
    """How many instances entered each element (path frequencies)."""
    first: InstanceOutcome
    history: list[dict[str, Any]]
    """The first instance's history records (JSON documents, with the variables each step set)."""
    actions: list[Action]
    jobs: dict[str, list[dict[str, Any]]]
    """Per job type, the mocks the first instance's jobs got, in order."""
    virtual_time: str
    seconds: float


class _Mocks:
    """Picks a mock per job or user task by weight, and records the first instance's picks.

    A pick depends only on the seed, the instance's number and the job's place in it (element
    instance and attempt), never on the order the jobs of concurrent instances arrive in, so
    a seed repeats a simulation exactly.
    """

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.first: str | None = None
        self.number: dict[str, int] = {}
        self.known = asyncio.Condition()
        self.picked: dict[str, list[dict[str, Any]]] = {}

    async def started(self, ids: list[str]) -> None:
        """Number the instances in launch order (their jobs wait until then)."""
        async with self.known:
            self.number.update((iid, n) for n, iid in enumerate(ids))
            self.first = ids[0]
            self.known.notify_all()

    def pick(self, options: list[Mock], iid: str, place: str) -> Mock:
        if len(options) == 1:
            return options[0]
        chooser = random.Random(f"{self.scenario.seed}/{self.number[iid]}/{place}")
        return chooser.choices(options, weights=[m.weight for m in options])[0]

    def handler(self, task_type: str) -> Any:
        async def run(job: Job) -> dict[str, Any] | None:
            options = self.scenario.tasks.get(task_type) or [Mock("complete")]
            async with self.known:  # a job can arrive before its launch returned the id
                await self.known.wait_for(lambda: job.instance_id in self.number)
            mock = self.pick(options, job.instance_id, job.key.removeprefix(job.instance_id))
            if job.instance_id == self.first:
                self.picked.setdefault(task_type, []).append(mock.document())
            match mock.kind:
                case "complete":
                    return mock.variables
                case "error":
                    raise BpmnError(mock.code, mock.message, mock.variables)
                case _:
                    raise JobFailure(mock.message, retry=False)

        return run


def _path(history: list[Any]) -> list[str]:
    return [
        e.element_id
        for record in history
        for e in record.events
        if e.type == "element-activated" and e.element_id and e.ei != 1
    ]


async def simulate(source: str, scenario: Scenario, *, name: str | None = None) -> SimulationResult:
    """Run ``scenario`` on the model ``source`` in a fresh test engine (see the module doc)."""
    began = time.perf_counter()
    defs = parse_and_check(source, name=name)
    outline = model_outline(defs)
    executable = outline["processes"]
    process_id = scenario.process or (executable[0] if len(executable) == 1 else None)
    if process_id is None or process_id not in executable:
        raise _fail("process", f"one of the model's executable processes: {', '.join(executable) or 'none'}")
    mocks = _Mocks(scenario)
    async with ProcessTestEngine(tenant=TENANT, start_time=START) as engine:
        await engine.deploy(source)
        for task_type in sorted(set(outline["task_types"]) | set(scenario.tasks)):
            engine.task(task_type)(mocks.handler(task_type))
        launching = asyncio.Semaphore(LAUNCHES)

        async def launch() -> str:
            async with launching:
                return await engine.start_instance(process_id, scenario.variables)

        ids = list(await asyncio.gather(*(launch() for _ in range(scenario.instances))))
        await mocks.started(ids)
        actions = await _drive(engine, scenario, ids if outline["user_tasks"] else [], mocks)
        histories = await _histories(engine, len(ids))
        elements: dict[str, int] = {}
        states: dict[str, int] = {}
        for iid in ids:
            records = histories.get(iid, [])
            for element in set(_path(records)):
                elements[element] = elements.get(element, 0) + 1
            state = records[-1].state if records else "active"
            states[state] = states.get(state, 0) + 1
        history = histories.get(ids[0], [])
        snap = await engine.instance(ids[0])
        first = InstanceOutcome(
            id=ids[0],
            state=snap.state,
            variables=dict(snap.variables),
            path=_path(history),
            incidents=[{"element_id": i.element_id, "message": i.message} for i in snap.incidents],
            waiting=[t.element_id for t in await engine.user_tasks(ids[0])] if snap.state == "active" else [],
        )
        return SimulationResult(
            process_id=process_id,
            instances=len(ids),
            states=states,
            elements=elements,
            first=first,
            history=msgspec.to_builtins(history),
            actions=actions,
            jobs=mocks.picked,
            virtual_time=engine.clock.now().isoformat(),
            seconds=round(time.perf_counter() - began, 3),
        )


async def _histories(engine: ProcessTestEngine, count: int) -> dict[str, list[r.HistoryRecord]]:
    """Every history record of the simulation, by instance (one ordered consumer for all)."""
    sub = await engine.js.subscribe(layout.tenant_history_subjects(TENANT), ordered_consumer=True)
    found: dict[str, list[r.HistoryRecord]] = {}
    decode = msgspec.json.Decoder(r.HistoryRecord).decode
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=2.0)
            except TimeoutError:
                break
            record = decode(msg.data)
            found.setdefault(record.instance, []).append(record)
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return found


async def _complete_user_tasks(
    engine: ProcessTestEngine, scenario: Scenario, ids: list[str], mocks: _Mocks, actions: list[Action]
) -> bool:
    done = False
    for iid in ids:
        for task in await engine.user_tasks(iid):
            options = scenario.user_tasks.get(task.element_id) or scenario.user_tasks.get("*") or [Mock("complete")]
            mock = mocks.pick(options, iid, task.id.removeprefix(iid))
            await engine.complete_user_task(task.id, mock.variables)
            if iid == mocks.first:
                actions.append(Action(kind="user-task", element_id=task.element_id, variables=mock.variables))
            done = True
    return done


async def _drive(engine: ProcessTestEngine, scenario: Scenario, ids: list[str], mocks: _Mocks) -> list[Action]:
    actions: list[Action] = []
    events = list(scenario.events)
    for _ in range(MAX_ROUNDS):
        await engine.wait_until_idle()
        if await _complete_user_tasks(engine, scenario, ids, mocks, actions):
            continue
        elapsed = engine.clock.now() - START
        if events:
            event = events.pop(0)
            if event.at > elapsed:
                await engine.advance_time(event.at - elapsed)
                actions.append(Action(kind="advance", seconds=(event.at - elapsed).total_seconds()))
            if event.kind == "message":
                await engine.publish_message(
                    event.name, correlation_key=event.correlation_key, variables=event.variables
                )
                actions.append(
                    Action(kind="message", name=event.name, correlation_key=event.correlation_key, variables=event.variables)
                )
            elif event.kind == "signal":
                await engine.broadcast_signal(event.name, variables=event.variables)
                actions.append(Action(kind="signal", name=event.name, variables=event.variables))
            continue
        due = min((s.due for s in engine.timers.pending.values()), default=None)
        if due is None:
            break
        step = datetime.fromisoformat(due.replace("Z", "+00:00")) - engine.clock.now()
        if elapsed + step > scenario.until:
            break
        await engine.advance_time(max(step, timedelta(0)))
        actions.append(Action(kind="advance", seconds=max(step, timedelta(0)).total_seconds()))
    return actions


_running = asyncio.Semaphore(2)


async def simulate_bounded(source: str, scenario: Scenario, *, timeout: float = 60.0) -> SimulationResult:
    """:func:`simulate` for a server: at most two at a time, each within ``timeout`` seconds."""
    async with _running:
        try:
            async with asyncio.timeout(timeout):
                return await simulate(source, scenario)
        except TimeoutError:
            raise ScenarioError(f"the simulation did not finish within {timeout:.0f} s (fewer instances?)") from None
