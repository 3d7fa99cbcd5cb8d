"""The process test kit: a real engine on a real nats-server, with a virtual clock.

.. code-block:: python

    from natsflow.testing import ProcessTestEngine

    async with ProcessTestEngine() as engine:
        await engine.deploy("order.bpmn")

        @engine.task("charge")
        async def charge(job):
            return {"charged": True}

        iid = await engine.start_instance("order", variables={"amount": 10})
        await engine.wait_until_idle()
        snap = await engine.instance(iid)
        assert snap.state == "completed"

An embedded nats-server is started on a free port (or pass ``nats_url``), with the engine and a
worker runtime in the same process. Time is virtual: the engine reads it from
:attr:`ProcessTestEngine.clock`, and :meth:`advance_time` moves it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError

from natsflow_engine import layout
from natsflow_engine.errors import BpmnValidationError, NatsflowError, NotFoundError, ValidationIssue
from natsflow_engine.natsutil import list_keys
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import deploy_definitions, resolve_version
from natsflow_engine.runtime.engine import Engine, EngineSettings
from natsflow_engine.runtime.forms import deploy_form, get_form
from natsflow_engine.runtime.setup import ensure_layout, open_buckets
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.store import publish_command
from natsflow_engine.worker import Handler, Worker

__all__ = ["IncidentView", "InstanceSnapshot", "ProcessTestEngine", "UserTaskView", "VirtualClock"]

_user_task_decoder = msgspec.json.Decoder(r.UserTask)
_history_decoder = msgspec.json.Decoder(r.HistoryRecord)
_ids = itertools.count(1)


async def _at_least(index: dict[tuple[str, str], int], key: tuple[str, str], version: int) -> bool:
    return index.get(key, 0) >= version


class VirtualTimers:
    """Timers on the virtual clock: kept in memory, fired by :meth:`ProcessTestEngine.advance_time`."""

    def __init__(self) -> None:
        self.pending: dict[str, r.TimerSpec] = {}

    async def schedule(self, spec: r.TimerSpec) -> None:
        self.pending[spec.id] = spec

    async def cancel(self, spec: r.TimerCancel) -> None:
        self.pending.pop(spec.id, None)

    def due(self, now: datetime) -> list[r.TimerSpec]:
        stamp = now.astimezone(UTC)
        ready = [s for s in self.pending.values() if datetime.fromisoformat(s.due.replace("Z", "+00:00")) <= stamp]
        ready.sort(key=lambda s: s.due)
        for spec in ready:
            del self.pending[spec.id]
        return ready


class VirtualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("time only moves forward")
        self._now += delta
        return self._now


@dataclass(frozen=True)
class IncidentView:
    id: str
    element_id: str
    kind: str
    message: str


@dataclass(frozen=True)
class InstanceSnapshot:
    id: str
    process_id: str
    version: int
    state: str
    variables: dict[str, Any]
    completed_elements: list[str]
    active_elements: list[str]
    incidents: list[IncidentView]
    history: list[r.HistoryEvent] = field(repr=False, default_factory=list)


@dataclass(frozen=True)
class UserTaskView:
    id: str
    element_id: str
    assignee: str | None
    candidate_groups: list[str]
    candidate_users: list[str]
    variables: dict[str, Any]
    name: str | None = None
    due_date: str | None = None
    form_id: str | None = None
    """The deployed form the task links (:meth:`ProcessTestEngine.form` reads it)."""


class ProcessTestEngine:
    """See the module docstring. Use as ``async with``."""

    def __init__(
        self,
        *,
        nats_url: str | None = None,
        tenant: str = layout.DEFAULT_TENANT,
        start_time: datetime | None = None,
        idle_timeout: float = 30.0,
    ) -> None:
        self.tenant = layout.validate_tenant(tenant)
        self.clock = VirtualClock(start_time)
        self.idle_timeout = idle_timeout
        self._nats_url = nats_url
        self._server: EmbeddedNatsServer | None = None
        self.timers = VirtualTimers()
        self.nc: Client
        self.engine: Engine
        self.worker: Worker

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> ProcessTestEngine:
        if self._nats_url is None:
            self._server = EmbeddedNatsServer().start()
            self._nats_url = self._server.url
        self.nc = await nats.connect(self._nats_url)
        self.js = self.nc.jetstream()
        await ensure_layout(self.js)
        buckets = await open_buckets(self.js)
        self.instances_kv = buckets[layout.BUCKET_INSTANCES]
        self.workflows_kv = buckets[layout.BUCKET_WORKFLOWS]
        self.usertasks_kv = buckets[layout.BUCKET_USERTASKS]
        self.engine = await self._new_engine()
        self.worker = Worker(tenant=self.tenant, nc=self.nc)
        await self.worker.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.worker.stop(timeout=2.0)
        await self.engine.stop(timeout=2.0)
        await self.nc.close()
        if self._server is not None:
            self._server.close()

    async def _new_engine(self) -> Engine:
        return await Engine(self.nc, EngineSettings(), clock=self.clock.now, timers=self.timers).start()

    async def restart_engine(self) -> None:
        """Stop the engine and start a fresh one (empty caches): state must come from NATS."""
        await self.engine.stop(timeout=2.0)
        self.engine = await self._new_engine()

    # --- deploying and starting -----------------------------------------------------------------

    async def deploy(self, source: str | Path | bytes) -> list[str]:
        """Deploy a BPMN file (Path, or a str that is not XML) or document (XML text or bytes, a
        byte-order mark allowed); returns the process ids. An empty source is a
        :class:`BpmnValidationError`."""
        if isinstance(source, str):
            text = source.lstrip("\ufeff \t\r\n")
            if not text:
                raise BpmnValidationError([ValidationIssue(None, None, "the BPMN source is empty")])
            source = text if text.startswith("<") else Path(source)
        deployed = await deploy_definitions(self.workflows_kv, self.tenant, source, now=self.clock.now())
        index = self.engine.start_index.latest
        for d in deployed:  # the engine has seen the version (and scheduled its timer starts)
            key, version = (self.tenant, d.process_id), d.version
            await self._wait_for(functools.partial(_at_least, index, key, version))
        return [d.process_id for d in deployed]

    async def deploy_form(self, source: str | Path) -> str:
        """Deploy a Camunda form (a ``.form`` Path, or its JSON text) for user tasks that link it
        by ``formId``; returns the form id."""
        name = source.name if isinstance(source, Path) else None
        text = source.read_text(encoding="utf-8-sig") if isinstance(source, Path) else source
        deployed = await deploy_form(self.workflows_kv, self.tenant, text, name=name, now=self.clock.now())
        return deployed.form_id

    async def form(self, form_id: str) -> dict[str, Any]:
        """The schema of a deployed form."""
        schema: dict[str, Any] = msgspec.json.decode((await get_form(self.workflows_kv, self.tenant, form_id)).source)
        return schema

    def task(self, task_type: str, *, concurrency: int = 16) -> Callable[[Handler], Handler]:
        """Register a job handler (``async def handler(job) -> dict | None``)."""
        return self.worker.task(task_type, concurrency=concurrency)

    async def start_instance(
        self, process_id: str, variables: Mapping[str, Any] | None = None, *, business_key: str | None = None
    ) -> str:
        """Start an instance; returns once the engine created it (not when it finished)."""
        iid = r.new_id()
        version = await resolve_version(self.workflows_kv, self.tenant, process_id)  # NotFoundError when not deployed
        cmd = r.Launch(
            id=f"launch.{iid}",
            tenant=self.tenant,
            instance=iid,
            process_id=process_id,
            version=version,
            variables=dict(variables or {}),
            business_key=business_key,
        )
        await self._send(cmd)
        await self._wait_for(lambda: self._exists(iid))
        return iid

    async def publish_message(
        self,
        name: str,
        *,
        correlation_key: str = "",
        variables: Mapping[str, Any] | None = None,
        ttl: timedelta = timedelta(0),
        message_id: str | None = None,
    ) -> int:
        """Publish a message (Zeebe semantics); returns how many catches and start events it
        reached, then waits until the engine is idle."""
        reached = await self.engine.messaging.publish_message(
            self.tenant, name, correlation_key, dict(variables or {}), ttl=ttl, message_id=message_id,
            now=self.clock.now(),
        )
        await self.wait_until_idle()
        return reached

    async def broadcast_signal(self, name: str, *, variables: Mapping[str, Any] | None = None) -> int:
        reached = await self.engine.messaging.broadcast_signal(self.tenant, name, dict(variables or {}))
        await self.wait_until_idle()
        return reached

    async def evaluate_conditions(
        self,
        variables: Mapping[str, Any] | None = None,
        *,
        process_id: str | None = None,
        evaluation_id: str | None = None,
        max_starts: int = 100,
    ) -> list[str]:
        """Evaluate the process-level conditional start events with ``variables`` (the API's
        ``conditional-evaluate``); returns the instances started, once the engine is idle."""
        versions = None
        if process_id is not None:
            versions = {process_id: await resolve_version(self.workflows_kv, self.tenant, process_id)}
        started, _failed = await self.engine.messaging.evaluate_conditions(
            self.tenant, dict(variables or {}), versions=versions, evaluation_id=evaluation_id, max_starts=max_starts
        )
        for s in started:
            await self._wait_for(functools.partial(self._exists, s.instance))
        await self.wait_until_idle()
        return [s.instance for s in started]

    async def advance_time(self, delta: timedelta) -> None:
        """Move the virtual clock forward, firing every timer that falls due on the way (in
        order, each at its own time), then wait until the engine is idle."""
        await self.wait_until_idle()
        target = self.clock.now() + delta
        while True:
            nxt = min(
                (datetime.fromisoformat(s.due.replace("Z", "+00:00")) for s in self.timers.pending.values()),
                default=None,
            )
            if nxt is None or nxt > target:
                break
            if nxt > self.clock.now():
                self.clock.advance(nxt - self.clock.now())
            for spec in self.timers.due(self.clock.now()):
                await self._send(spec.launch or r.TimerFired(id=spec.id, tenant=spec.tenant, instance=spec.instance,
                                                             ei=spec.ei, timer=spec.id, due=spec.due))
            await self.wait_until_idle()
        if target > self.clock.now():
            self.clock.advance(target - self.clock.now())
        await self.wait_until_idle()

    async def wait_until_idle(self, timeout: float | None = None) -> None:
        """Return when no command is pending or being applied and no job of a registered task
        type is pending or running (checked twice in a row)."""
        deadline = asyncio.get_running_loop().time() + (timeout or self.idle_timeout)
        quiet = 0
        while quiet < 2:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the engine did not become idle in time")
            quiet = quiet + 1 if await self._idle() else 0
            await asyncio.sleep(0.005)

    async def _idle(self) -> bool:
        if self.engine.inflight or self.worker.inflight:
            return False
        info = await self.js.consumer_info(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)
        if info.num_pending or info.num_ack_pending:
            return False
        for task_type in self.worker.task_types:
            try:
                info = await self.js.consumer_info(
                    layout.STREAM_JOBS, layout.job_consumer(self.tenant, task_type)
                )
            except Exception:
                return False  # consumer not created yet: the worker is still starting
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    # --- reading --------------------------------------------------------------------------------

    async def _state(self, iid: str) -> r.InstanceState:
        try:
            entry = await self.instances_kv.get(layout.instance_key(self.tenant, iid))
        except KeyNotFoundError:
            raise NotFoundError(f"instance {iid} not found") from None
        return r.decode_state(entry.value or b"")

    async def _exists(self, iid: str) -> bool:
        try:
            await self.instances_kv.get(layout.instance_key(self.tenant, iid))
        except KeyNotFoundError:
            return False
        return True

    async def history(self, iid: str) -> list[r.HistoryRecord]:
        """Every history record of an instance, oldest first."""
        subject = layout.history_subject(self.tenant, iid)
        sub = await self.js.subscribe(subject, ordered_consumer=True)
        records: list[r.HistoryRecord] = []
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except TimeoutError:
                    break
                records.append(_history_decoder.decode(msg.data))
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        return records

    async def instance(self, iid: str) -> InstanceSnapshot:
        state = await self._state(iid)
        events = [e for rec in await self.history(iid) for e in rec.events]
        return InstanceSnapshot(
            id=state.id,
            process_id=state.process_id,
            version=state.version,
            state=state.state,
            variables=dict(state.root_vars()),
            completed_elements=[e.element_id or "" for e in events if e.type == "element-completed"],
            active_elements=[
                ei.el
                for ei in sorted(state.eis.values(), key=lambda e: e.key)
                if ei.key != 1 and not ei.listener
            ]
            if state.state == "active"
            else [],
            incidents=[IncidentView(i.id, i.element_id, i.kind, i.message) for i in state.incidents],
            history=events,
        )

    async def user_tasks(self, iid: str) -> list[UserTaskView]:
        state = await self._state(iid)
        ids = [ei.user_task for ei in state.eis.values() if ei.user_task is not None]
        views = []
        for task_id in ids:
            try:
                entry = await self.usertasks_kv.get(layout.usertask_key(self.tenant, task_id))
            except KeyNotFoundError:
                continue
            t = _user_task_decoder.decode(entry.value or b"")
            views.append(
                UserTaskView(
                    t.id,
                    t.element_id,
                    t.assignee,
                    t.candidate_groups,
                    t.candidate_users,
                    t.variables,
                    t.name,
                    t.due_date,
                    t.form_id,
                )
            )
        return views

    async def complete_user_task(self, task_id: str, variables: Mapping[str, Any] | None = None) -> None:
        iid = task_id.split(".", 1)[0]
        await self._send(
            r.UserTaskCompleted(
                id=f"utc.{task_id}.{next(_ids)}",
                tenant=self.tenant,
                instance=iid,
                task=task_id,
                variables=dict(variables or {}),
            )
        )
        await self.wait_until_idle()

    async def cancel_instance(self, iid: str) -> None:
        await self._state(iid)
        await self._send(r.Cancel(id=f"cancel.{iid}.{next(_ids)}", tenant=self.tenant, instance=iid))
        await self.wait_until_idle()

    async def resolve_incident(
        self, iid: str, incident_id: str, variables: Mapping[str, Any] | None = None
    ) -> None:
        await self._send(
            r.ResolveIncident(
                id=f"resolve.{incident_id}.{next(_ids)}",
                tenant=self.tenant,
                instance=iid,
                incident=incident_id,
                variables=dict(variables or {}),
            )
        )
        await self.wait_until_idle()

    async def instances(self, process_id: str | None = None) -> list[str]:
        """Instance ids (of one process, if given), oldest first."""
        keys = await list_keys(self.instances_kv, f"{self.tenant}.*")
        states = [await self._state(k.split(".", 1)[1]) for k in keys]
        chosen = [s for s in states if process_id is None or s.process_id == process_id]
        chosen.sort(key=lambda s: (s.started, s.id))
        return [s.id for s in chosen]

    # --- helpers --------------------------------------------------------------------------------

    async def _send(self, cmd: r.AnyCommand) -> None:
        await publish_command(self.js, cmd)

    async def _wait_for(self, check: Callable[[], Any], timeout: float | None = None) -> None:
        deadline = asyncio.get_running_loop().time() + (timeout or self.idle_timeout)
        while not await check():
            if asyncio.get_running_loop().time() > deadline:
                raise NatsflowError("timed out waiting for the engine")
            await asyncio.sleep(0.002)
