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

A :class:`Run` is a simulation in progress, moved on by hand between its steps (the console's
step-by-step simulation): a message or a signal now, the clock forward (timers and scheduled
events fire on the way), or to the end as :func:`simulate` runs it. After each move the engine
settles: jobs get their mocks, user tasks their completions, timers already due fire.
Everything that moved the clock or reached the model is kept in order with its virtual time,
so :meth:`Run.scenario_as_run` is a scenario that :func:`simulate` (and ``natsflow simulate``)
replays to the same end.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

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
from natsflow_engine.errors import BpmnError, ConflictError, JobFailure
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import parse_and_check
from natsflow_engine.testing import ProcessTestEngine
from natsflow_engine.worker import Job

from natsflow_console.scenario import (
    MAX_EVENTS,
    MAX_INSTANCES,
    MAX_UNTIL,
    START,
    Mock,
    Scenario,
    ScenarioError,
    ScenarioEvent,
    parse_scenario,
    scenario_document,
)

__all__ = [
    "MAX_INSTANCES",
    "START",
    "PendingTimer",
    "Run",
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "bounded",
    "model_outline",
    "parse_scenario",
    "simulate",
    "simulate_bounded",
]

MAX_ROUNDS = 100_000
TENANT = "simulation"
LAUNCHES = 64
"""Instances launched at once."""


def _fail(where: str, problem: str) -> ScenarioError:
    return ScenarioError(f"{where}: {problem}")


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




class PendingTimer(msgspec.Struct, kw_only=True):
    """A timer that has not fired: its id (to fire it by hand), where and when."""

    id: str
    instance: str
    element_id: str | None
    due: str
    at: float
    """Seconds from the simulation's start."""


def _due(spec: r.TimerSpec) -> timedelta:
    return datetime.fromisoformat(spec.due.replace("Z", "+00:00")) - START


class Run:
    """A simulation in progress (see the module doc). ``async with Run(...) as run``, or
    :meth:`start` and :meth:`close`."""

    def __init__(self, source: str, scenario: Scenario, *, name: str | None = None) -> None:
        defs = parse_and_check(source, name=name)
        self.outline = model_outline(defs)
        executable = self.outline["processes"]
        process_id = scenario.process or (executable[0] if len(executable) == 1 else None)
        if process_id is None or process_id not in executable:
            raise _fail("process", f"one of the model's executable processes: {', '.join(executable) or 'none'}")
        self.source = source
        self.process_id: str = process_id
        self.scenario = scenario
        self.engine = ProcessTestEngine(tenant=TENANT, start_time=START)
        self.ids: list[str] = []
        self.actions: list[Action] = []
        self.fired: list[ScenarioEvent] = []
        """Every event that reached the model or moved the clock, in order, with its time."""
        self.scheduled = list(scenario.events)
        """The scenario's events not fired yet."""
        self.finished = False
        self.busy = 0.0
        """Seconds spent running the engine."""
        self._mocks = _Mocks(scenario)
        self._open = False

    async def __aenter__(self) -> Run:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> Run:
        """Deploy, launch the instances, settle, fire the events scheduled at the start."""
        began = time.perf_counter()
        await self.engine.__aenter__()
        self._open = True
        try:
            engine = self.engine
            await engine.deploy(self.source)
            for task_type in sorted(set(self.outline["task_types"]) | set(self.scenario.tasks)):
                engine.task(task_type)(self._mocks.handler(task_type))
            launching = asyncio.Semaphore(LAUNCHES)

            async def launch() -> str:
                async with launching:
                    return await engine.start_instance(self.process_id, self.scenario.variables)

            self.ids = list(await asyncio.gather(*(launch() for _ in range(self.scenario.instances))))
            await self._mocks.started(self.ids)
            await self._settle()
            await self._scheduled_until(timedelta(0))
        except BaseException:
            await self.close()
            raise
        self.busy += time.perf_counter() - began
        return self

    @property
    def closed(self) -> bool:
        return not self._open

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self.engine.__aexit__(None, None, None)

    @property
    def elapsed(self) -> timedelta:
        """Virtual time since the start."""
        return self.engine.clock.now() - START

    # --- moves ------------------------------------------------------------------------------------

    async def fire(self, event: ScenarioEvent) -> int:
        """Publish a message or broadcast a signal now (``event.at`` is ignored); how many
        catches (and start events) it reached."""
        if event.kind == "time":
            raise _fail("event", "a message or a signal")
        return await self._by_hand(replace(event, at=self.elapsed))

    async def advance_to(self, at: timedelta) -> None:
        """Move the clock to ``at`` (from the start): the scenario's events and the timers due
        on the way fire in order, each at its time."""
        if at < self.elapsed:
            raise _fail("advance", "the virtual clock only moves forward")
        if at > MAX_UNTIL:
            raise _fail("advance", "at most 10 years from the start")
        await self._by_hand(ScenarioEvent(at, "time"))

    async def advance(self, delta: timedelta) -> None:
        await self.advance_to(self.elapsed + delta)

    async def fire_timer(self, timer_id: str) -> None:
        """Move the clock to the time a pending timer is due (it fires, with all due before)."""
        self._movable()
        spec = self.engine.timers.pending.get(timer_id)
        if spec is None:
            raise _fail("timer", f"no pending timer {timer_id[:64]!r} (it fired or was cancelled)")
        await self.advance_to(max(_due(spec), self.elapsed))

    async def next(self) -> None:
        """Move the clock to the next pending timer or scheduled event, whichever comes first."""
        self._movable()
        due = [t for t in (self._next_timer(), self.scheduled[0].at if self.scheduled else None) if t is not None]
        if not due:
            raise ConflictError("no timer is pending and no scheduled event is left: nothing to wait for")
        await self.advance_to(max(min(due), self.elapsed))

    async def finish(self) -> None:
        """Run to the end as :func:`simulate` does: the scenario's remaining events, then the
        timers on their schedule until the scenario's ``until``. Nothing can be fired after."""
        self._movable()
        async with self._working():
            while self.scheduled:
                await self._fire(self.scheduled.pop(0))
            for _ in range(MAX_ROUNDS):
                due = self._next_timer()
                if due is None or due > self.scenario.until:
                    break
                await self._go(max(due, self.elapsed))
                await self._settle()
            self.finished = True

    async def _by_hand(self, event: ScenarioEvent) -> int:
        self._movable()
        if len(self.fired) + len(self.scheduled) >= MAX_EVENTS:
            raise _fail("events", f"at most {MAX_EVENTS} events in one simulation (a scenario file holds no more)")
        async with self._working():
            await self._scheduled_until(event.at)
            redundant = event.kind == "time" and self.fired and self.fired[-1].at == event.at
            return 0 if redundant else await self._fire(event)  # a scheduled event took the clock there

    @contextlib.asynccontextmanager
    async def _working(self) -> AsyncIterator[None]:
        """The engine work of a move. One that fails or is cancelled midway leaves the run in a
        state no scenario repeats, so it ends the run (:attr:`closed`)."""
        began = time.perf_counter()
        try:
            yield
        except BaseException:
            await self.close()
            raise
        finally:
            self.busy += time.perf_counter() - began

    def _movable(self) -> None:
        if not self._open:
            raise ConflictError("the simulation has ended")
        if self.finished:
            raise ConflictError("the simulation ran to its end: start a new one to fire more")

    # --- the engine -------------------------------------------------------------------------------

    async def _go(self, at: timedelta) -> None:
        step = at - self.elapsed
        if step > timedelta(0):
            await self.engine.advance_time(step)
            self.actions.append(Action(kind="advance", seconds=step.total_seconds()))

    async def _fire(self, event: ScenarioEvent) -> int:
        await self._go(event.at)
        reached = 0
        if event.kind == "message":
            reached = await self.engine.publish_message(
                event.name, correlation_key=event.correlation_key, variables=event.variables
            )
            self.actions.append(
                Action(kind="message", name=event.name, correlation_key=event.correlation_key, variables=event.variables)
            )
        elif event.kind == "signal":
            reached = await self.engine.broadcast_signal(event.name, variables=event.variables)
            self.actions.append(Action(kind="signal", name=event.name, variables=event.variables))
        self.fired.append(event)
        await self._settle()
        return reached

    async def _scheduled_until(self, at: timedelta) -> None:
        while self.scheduled and self.scheduled[0].at <= at:
            await self._fire(self.scheduled.pop(0))

    def _next_timer(self) -> timedelta | None:
        return min((_due(s) for s in self.engine.timers.pending.values()), default=None)

    async def _settle(self) -> None:
        """Until nothing moves: the engine idle, user tasks completed, timers due now fired."""
        for _ in range(MAX_ROUNDS):
            await self.engine.wait_until_idle()
            if await self._complete_user_tasks():
                continue
            due = self._next_timer()
            if due is not None and due <= self.elapsed:
                await self.engine.advance_time(timedelta(0))
                self.actions.append(Action(kind="advance", seconds=0.0))
                continue
            return
        raise _fail("scenario", f"the model did not come to rest within {MAX_ROUNDS} rounds")

    async def _complete_user_tasks(self) -> bool:
        if not self.outline["user_tasks"]:
            return False
        done = False
        for iid in self.ids:
            for task in await self.engine.user_tasks(iid):
                options = (
                    self.scenario.user_tasks.get(task.element_id) or self.scenario.user_tasks.get("*") or [Mock("complete")]
                )
                mock = self._mocks.pick(options, iid, task.id.removeprefix(iid))
                await self.engine.complete_user_task(task.id, mock.variables)
                if iid == self._mocks.first:
                    self.actions.append(Action(kind="user-task", element_id=task.element_id, variables=mock.variables))
                done = True
        return done

    # --- reading ----------------------------------------------------------------------------------

    async def result(self) -> SimulationResult:
        """Where the simulation stands: states, counts per element, the first instance."""
        histories = await _histories(self.engine)
        return await self._result(histories)

    async def _result(self, histories: dict[str, list[r.HistoryRecord]]) -> SimulationResult:
        elements: dict[str, int] = {}
        states: dict[str, int] = {}
        for iid in self.ids:
            records = histories.get(iid, [])
            for element in set(_path(records)):
                elements[element] = elements.get(element, 0) + 1
            state = records[-1].state if records else "active"
            states[state] = states.get(state, 0) + 1
        first_id = self.ids[0]
        history = histories.get(first_id, [])
        snap = await self.engine.instance(first_id)
        first = InstanceOutcome(
            id=first_id,
            state=snap.state,
            variables=dict(snap.variables),
            path=_path(history),
            incidents=[{"element_id": i.element_id, "message": i.message} for i in snap.incidents],
            waiting=[t.element_id for t in await self.engine.user_tasks(first_id)] if snap.state == "active" else [],
        )
        return SimulationResult(
            process_id=self.process_id,
            instances=len(self.ids),
            states=states,
            elements=elements,
            first=first,
            history=msgspec.to_builtins(history),
            actions=list(self.actions),
            jobs={k: list(v) for k, v in self._mocks.picked.items()},
            virtual_time=self.engine.clock.now().isoformat(),
            seconds=round(self.busy, 3),
        )

    async def view(self, *, timers: int = 50) -> tuple[SimulationResult, list[PendingTimer]]:
        """:meth:`result` and the first ``timers`` pending timers, soonest first."""
        histories = await _histories(self.engine)
        where: dict[tuple[str, int], str] = {}
        for iid, records in histories.items():
            for record in records:
                for e in record.events:
                    if e.type == "timer-scheduled" and e.ei is not None and e.element_id:
                        where[(iid, e.ei)] = e.element_id
        pending = sorted(self.engine.timers.pending.values(), key=lambda s: (s.due, s.id))[:timers]
        found = [
            PendingTimer(
                id=s.id,
                instance=s.instance,
                element_id=where.get((s.instance, s.ei)),
                due=s.due,
                at=_due(s).total_seconds(),
            )
            for s in pending
        ]
        return await self._result(histories), found

    def scenario_as_run(self) -> dict[str, Any]:
        """The scenario that repeats this run: its events are what fired, with their times; it
        stops where the run stands (``until``), or at the scenario's end if it ran to it."""
        until = max(self.scenario.until, self.elapsed) if self.finished else self.elapsed
        ran = replace(self.scenario, events=list(self.fired), until=until, process=self.process_id)
        return scenario_document(ran)


async def simulate(source: str, scenario: Scenario, *, name: str | None = None) -> SimulationResult:
    """Run ``scenario`` on the model ``source`` to its end in a fresh test engine (see the
    module doc)."""
    began = time.perf_counter()
    async with Run(source, scenario, name=name) as run:
        await run.finish()
        result = await run.result()
    result.seconds = round(time.perf_counter() - began, 3)
    return result


async def _histories(engine: ProcessTestEngine) -> dict[str, list[r.HistoryRecord]]:
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


_running = asyncio.Semaphore(2)


@contextlib.asynccontextmanager
async def bounded(timeout: float = 60.0) -> AsyncIterator[None]:
    """At most two simulations work at a time in a server, each move within ``timeout`` seconds."""
    async with _running:
        try:
            async with asyncio.timeout(timeout):
                yield
        except TimeoutError:
            raise ScenarioError(f"the simulation did not finish within {timeout:.0f} s (fewer instances?)") from None


async def simulate_bounded(source: str, scenario: Scenario, *, timeout: float = 60.0) -> SimulationResult:
    """:func:`simulate` for a server: at most two at a time, each within ``timeout`` seconds."""
    async with bounded(timeout):
        return await simulate(source, scenario)
