"""The engine: consumes commands from JetStream, steps instances, publishes effects.

One step, for one command (DESIGN.md section 2)::

    load record (cache or KV) ─► publish a previous step's effects if not known flushed
      ─► skip if the command was applied ─► interpreter.step (pure)
      ─► KV update(last=revision)  ── conflict: reload, run again
      ─► publish effects (pipelined, deterministic Nats-Msg-Id) ─► ack the command

The record keeps the step's effects (its *outbox*) until the next step replaces them, so a
crash between the KV write and the publishes is repaired by whichever replica handles the
instance next, or by the redelivered command; JetStream drops republished effects inside its
duplicate window. Commands of one instance are applied one at a time in stream order; commands
of different instances run concurrently. Any replica can handle any command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from natsflow_engine import layout
from natsflow_engine.bpmn.model import Process
from natsflow_engine.errors import NatsflowError, NotFoundError
from natsflow_engine.natsutil import PullLoop
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import DefinitionCache, get_latest
from natsflow_engine.runtime.interpreter import APPLIED_MEMORY, StepResult, step
from natsflow_engine.runtime.messaging import Messaging, StartIndex
from natsflow_engine.runtime.setup import LayoutSettings, ensure_layout, open_buckets
from natsflow_engine.runtime.starts import first_timer_starts, is_timer_start

__all__ = ["Engine", "EngineSettings"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EngineSettings:
    batch: int = 256
    """Commands fetched per pull request."""
    max_inflight: int = 2048
    """Commands being applied at once (across instances)."""
    cache_size: int = 20_000
    """Instance records kept in memory (LRU); a stale entry costs one conflict and a reload."""
    max_conflicts: int = 50
    """Revision conflicts tolerated for one command before it is left for redelivery."""
    fetch_timeout: float = 5.0
    """Seconds a pull request for commands stays open on the server."""


class TimerService(Protocol):
    """Where timer effects go: JetStream message schedules, or the test kit's virtual clock."""

    async def schedule(self, spec: r.TimerSpec) -> None: ...

    async def cancel(self, spec: r.TimerCancel) -> None: ...


class JetStreamTimers:
    """Timers as JetStream message schedules (``Nats-Schedule: @at``, nats-server >= 2.12).

    The schedule message waits on ``nf.sched.<tenant>.<instance>.<timer>`` in the command
    stream and, when due, the server publishes its body, a ``timer-fired`` command, to the
    instance's command subject. Durable across restarts of every process, the server's too.
    """

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def schedule(self, spec: r.TimerSpec) -> None:
        due = datetime.fromisoformat(spec.due.replace("Z", "+00:00"))
        command: r.Command = spec.launch or r.TimerFired(
            id=spec.id, tenant=spec.tenant, instance=spec.instance, ei=spec.ei, timer=spec.id, due=spec.due
        )
        target = layout.command_subject(spec.tenant, spec.instance)
        if due <= datetime.now(UTC) + timedelta(milliseconds=500):
            await self.js.publish(target, r.encode(command), headers={"Nats-Msg-Id": spec.id})
            return
        at = (due + timedelta(seconds=1)).replace(microsecond=0) if due.microsecond else due
        await self.js.publish(
            layout.schedule_subject(spec.tenant, spec.instance, spec.id),
            r.encode(command),
            headers={
                "Nats-Schedule": f"@at {at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
                "Nats-Schedule-Target": target,
                "Nats-Msg-Id": f"sched.{spec.id}",
            },
        )

    async def cancel(self, spec: r.TimerCancel) -> None:
        with contextlib.suppress(Exception):
            await self.js.purge_stream(layout.STREAM_COMMANDS,
                                       subject=layout.schedule_subject(spec.tenant, spec.instance, spec.id))


class _Bounded(OrderedDict[str, Any]):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.limit:
            self.popitem(last=False)


class Engine:
    """A stateless engine replica. Start any number of them on the same NATS account."""

    def __init__(
        self,
        nc: Client,
        settings: EngineSettings | None = None,
        *,
        layout_settings: LayoutSettings | None = None,
        clock: Clock = wall_clock,
        timers: TimerService | None = None,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.settings = settings or EngineSettings()
        self.layout = layout_settings or LayoutSettings()
        self.clock = clock
        self._cache: _Bounded = _Bounded(self.settings.cache_size)
        self._flushed: _Bounded = _Bounded(self.settings.cache_size)
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._loop: PullLoop | None = None
        self._advisories: Subscription | None = None
        self._stopping = asyncio.Event()
        self.timers: TimerService = timers or JetStreamTimers(self.js)
        self.steps = 0
        self.conflicts = 0

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> Engine:
        await ensure_layout(self.js, self.layout, update=True)
        buckets = await open_buckets(self.js)
        self.kv = buckets[layout.BUCKET_INSTANCES]
        self.workflows = buckets[layout.BUCKET_WORKFLOWS]
        self.usertasks = buckets[layout.BUCKET_USERTASKS]
        self.definitions = DefinitionCache(self.workflows)
        self.start_index = await StartIndex(self.workflows, self.definitions, self._version_deployed).start()
        self.messaging = Messaging(self.js, buckets[layout.BUCKET_MESSAGES], self.start_index, self.kv)
        self._stopping.clear()
        self._loop = await PullLoop(
            self.nc,
            layout.STREAM_COMMANDS,
            layout.ENGINE_CONSUMER,
            self._handle,
            max_inflight=self.settings.max_inflight,
            batch=self.settings.batch,
            expires=self.settings.fetch_timeout,
            name="engine",
        ).start()
        self._advisories = await self.nc.subscribe(
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{layout.STREAM_JOBS}.*",
            queue="natsflow-engine",
            cb=self._on_max_deliveries,
        )
        log.info("engine started")
        return self

    async def _on_max_deliveries(self, msg: Msg) -> None:
        """A job was delivered as often as its consumer allows without an answer (its workers
        crashed or timed out each time): raise an incident instead of leaving it stuck."""
        try:
            advisory = json.loads(msg.data)
            seq = int(advisory["stream_seq"])
            stored = await self.js.get_msg(layout.STREAM_JOBS, seq)
            job = msgspec.json.decode(stored.data or b"", type=r.Job)
        except Exception as exc:  # the job may have been answered meanwhile
            log.info("max-deliveries advisory not actionable: %s", exc)
            return
        deliveries = advisory.get("deliveries", "?")
        command = r.JobFailed(
            id=f"{job.key}.maxdeliver", tenant=job.tenant, instance=job.instance, job=job.key, ei=job.ei,
            message=f"job delivered {deliveries} times without an answer (its workers crashed or timed out)",
        )
        await self.js.publish(layout.command_subject(job.tenant, job.instance), r.encode(command),
                              headers={"Nats-Msg-Id": command.id})
        with contextlib.suppress(Exception):
            await self.js.delete_msg(layout.STREAM_JOBS, seq)

    async def _version_deployed(self, tenant: str, process_id: str, version: int) -> None:
        """A new latest version: schedule its timer start events, once across all replicas
        (a compare-and-set marker in the workflows bucket elects the replica that does it)."""
        process = await self.definitions.get(tenant, process_id, version)
        specs = first_timer_starts(tenant, process, version, self.clock())
        if not specs:
            return
        marker = f"{tenant}.{layout.token(process_id)}.timerstarts"
        value = str(version).encode()
        try:
            entry = await self.workflows.get(marker)
            if entry.value == value:
                return  # scheduled already
            await self.workflows.update(marker, value, last=entry.revision)
        except KeyNotFoundError:
            try:
                await self.workflows.create(marker, value)
            except KeyWrongLastSequenceError:
                return
        except KeyWrongLastSequenceError:
            return  # another replica won
        for spec in specs:
            await self.timers.schedule(spec)
        log.info("scheduled %d timer start event(s) of %s version %d", len(specs), process_id, version)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop pulling, let in-flight commands finish (bounded), then cancel the rest."""
        self._stopping.set()
        advisories, self._advisories = self._advisories, None
        if advisories is not None:
            with contextlib.suppress(Exception):
                await advisories.unsubscribe()
        if self._loop is not None:
            await self._loop.stop_pulling()
            await self._loop.drain(timeout)
            self._loop = None
        await self.start_index.stop()
        log.info("engine stopped after %d steps", self.steps)

    async def __aenter__(self) -> Engine:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._loop is not None

    @property
    def inflight(self) -> int:
        return self._loop.inflight if self._loop is not None else 0

    # --- consuming ------------------------------------------------------------------------------

    async def _handle(self, msg: Msg) -> None:
        key = msg.subject[len("nf.cmd.") :]
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                await self._apply(msg)
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    # --- one command ----------------------------------------------------------------------------

    async def _apply(self, msg: Msg) -> None:
        try:
            cmd: Any = r.command_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.error("dropping undecodable command on %s: %s", msg.subject, exc)
            await msg.term()
            return
        key = layout.instance_key(cmd.tenant, cmd.instance)
        for attempt in range(self.settings.max_conflicts):
            try:
                if attempt == 0 and isinstance(cmd, r.Launch) and key not in self._cache:
                    # a launch almost always names a new instance: skip the read, and let the
                    # create-if-absent below tell a repeated launch (conflict, then a real read)
                    state, rev = None, None
                else:
                    state, rev = await self._load(key)
            except msgspec.DecodeError as exc:
                await self._corrupt_record(cmd, str(exc))
                await msg.term()
                return
            if state is not None and state.outbox and state.outbox_cmd not in self._flushed:
                await self._publish(state.outbox)
                self._flushed.remember(state.outbox_cmd or "", True)
            if state is None and not isinstance(cmd, r.Launch):
                log.warning("command %s for unknown instance %s dropped", cmd.id, key)
                await msg.term()
                return
            if state is not None and cmd.id in state.applied:
                await msg.ack()
                return
            if state is not None and isinstance(cmd, r.Launch):
                log.info("launch %s: instance %s exists already", cmd.id, key)
                await msg.ack()
                return
            result = await self._step(state, cmd)
            if result is None:
                await msg.term()
                return
            if not result.changed:
                await msg.ack()
                return
            new = result.state
            outbox: list[Any] = [*result.effects]
            if result.history is not None:
                outbox.append(result.history)
            new.outbox = outbox
            new.outbox_cmd = cmd.id
            new.outbox_at = self.clock().isoformat()
            data = r.encode(new)
            if len(data) > self.layout.max_payload:
                self._cache.pop(key, None)
                data, new, outbox = await self._oversized(key, cmd, len(data))
            try:
                if rev is None:
                    rev = await self.kv.create(key, data)
                else:
                    rev = await self.kv.update(key, data, last=rev)
            except KeyWrongLastSequenceError:
                self.conflicts += 1
                self._cache.pop(key, None)
                continue
            if new.state == "active":
                self._cache.remember(key, (new, rev))
            else:
                self._cache.pop(key, None)
            await self._publish(outbox)
            self._flushed.remember(cmd.id, True)
            self.steps += 1
            await msg.ack()
            return
        log.warning(
            "command %s: %d revision conflicts in a row; left for redelivery",
            cmd.id,
            self.settings.max_conflicts,
        )

    async def _corrupt_record(self, cmd: Any, error: str) -> None:
        """The record does not decode: raise an incident in the instance's history, keep the
        record as it is for an operator to inspect or repair, and leave the command unapplied."""
        log.error("instance record %s.%s is corrupt (%s); command %s not applied", cmd.tenant, cmd.instance, error,
                  cmd.id)
        record = r.HistoryRecord(
            tenant=cmd.tenant,
            instance=cmd.instance,
            process_id="",
            step=0,
            at=self.clock().isoformat(),
            command=type(cmd).__name__,
            state="unknown",
            events=[
                r.HistoryEvent(
                    type="incident-raised",
                    data={"kind": "corrupt-record", "command": cmd.id,
                          "message": f"the instance record cannot be read: {error}"},
                )
            ],
        )
        await self.js.publish(
            layout.history_subject(cmd.tenant, cmd.instance),
            r.encode(record),
            headers={"Nats-Msg-Id": f"{cmd.instance}.corrupt.{cmd.id}"},
        )

    async def _load(self, key: str) -> tuple[r.InstanceState | None, int | None]:
        # Taken out of the cache: the interpreter changes the state in place, and only a write
        # that succeeded may put it back (a failed write must not leave a state ahead of KV).
        cached = self._cache.pop(key, None)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None, None
        if entry.value is None:
            return None, None
        return r.decode_state(entry.value), entry.revision

    async def _step(self, state: r.InstanceState | None, cmd: Any) -> StepResult | None:
        """Run the interpreter; a failure of the interpreter becomes an incident, never a crash."""
        now = self.clock()
        try:
            if isinstance(cmd, r.Launch):
                version = cmd.version
                if version is None:
                    # the watched index of latest versions saves a KV read; a version deployed a
                    # moment ago may not be in it yet (launchers that must have it pass it)
                    version = self.start_index.latest.get((cmd.tenant, cmd.process_id))
                    if version is None:
                        version = (await get_latest(self.workflows, cmd.tenant, cmd.process_id)).version
                    cmd = msgspec.structs.replace(cmd, version=version)
                process: Process | None = await self.definitions.get(cmd.tenant, cmd.process_id, version)
                latest = self.start_index.latest.get((cmd.tenant, cmd.process_id), version)
                if version < latest and process is not None and is_timer_start(process, cmd.start_event):
                    log.info("timer start of %s v%d replaced by v%d; not launched", cmd.process_id, version, latest)
                    return None
            else:
                assert state is not None
                process = await self.definitions.get(state.tenant, state.process_id, state.version)
        except NotFoundError as exc:
            log.error("command %s: %s", cmd.id, exc)
            if state is None:
                return None
            return self._engine_incident(state, cmd, f"definition unavailable: {exc}")
        try:
            return step(process, state, cmd, now)
        except Exception as exc:
            log.exception("interpreter failed on command %s of instance %s", cmd.id, cmd.instance)
            if state is None:
                return None
            key = layout.instance_key(cmd.tenant, cmd.instance)
            self._cache.pop(key, None)
            fresh, _ = await self._load(key)
            if fresh is None:
                return None
            return self._engine_incident(fresh, cmd, f"internal error: {type(exc).__name__}: {exc}")

    def _engine_incident(
        self, state: r.InstanceState, cmd: Any, message: str, kind: str = "engine"
    ) -> StepResult:
        state.step += 1
        at = self.clock().isoformat()
        ei = getattr(cmd, "ei", None) or 1
        element = state.eis[ei].el if ei in state.eis else state.process_id
        incident = r.Incident(
            id=f"{state.id}.{ei}.{state.step}", ei=ei, element_id=element, kind=kind, message=message, at=at
        )
        state.incidents.append(incident)
        state.applied = [*state.applied, cmd.id][-APPLIED_MEMORY:]
        history = r.HistoryRecord(
            tenant=state.tenant,
            instance=state.id,
            process_id=state.process_id,
            step=state.step,
            at=at,
            command=type(cmd).__name__,
            state=state.state,
            events=[
                r.HistoryEvent(
                    type="incident-raised",
                    element_id=element,
                    ei=ei,
                    data={"incident": incident.id, "kind": kind, "message": message},
                )
            ],
        )
        return StepResult(state, [], history)

    async def _oversized(self, key: str, cmd: Any, size: int) -> tuple[bytes, r.InstanceState, list[Any]]:
        fresh, _ = await self._load(key)
        message = (
            f"the instance record would be {size} bytes, more than the limit of {self.layout.max_payload};"
            " variables not applied"
        )
        if fresh is None:
            raise NatsflowError(message)
        result = self._engine_incident(fresh, cmd, message, kind="payload")
        assert result.history is not None
        outbox: list[Any] = [result.history]
        fresh.outbox = outbox
        fresh.outbox_cmd = cmd.id
        return r.encode(fresh), fresh, outbox

    # --- effects --------------------------------------------------------------------------------

    async def _publish(self, outbox: list[Any]) -> None:
        pending: list[Awaitable[Any]] = []
        js = self.js
        for item in outbox:
            if isinstance(item, r.Job):
                pending.append(
                    js.publish(
                        layout.job_subject(item.tenant, item.type),
                        r.encode(item),
                        headers={"Nats-Msg-Id": item.key},
                    )
                )
            elif isinstance(item, r.HistoryRecord):
                pending.append(
                    js.publish(
                        layout.history_subject(item.tenant, item.instance),
                        r.encode(item),
                        headers={"Nats-Msg-Id": f"{item.instance}.h{item.step}"},
                    )
                )
            elif isinstance(item, r.UserTask):
                pending.append(self.usertasks.put(layout.usertask_key(item.tenant, item.id), r.encode(item)))
            elif isinstance(item, r.UserTaskDone):
                pending.append(self._delete_usertask(layout.usertask_key(item.tenant, item.id)))
            elif isinstance(item, r.Command):
                pending.append(
                    js.publish(
                        layout.command_subject(item.tenant, item.instance),
                        r.encode(item),
                        headers={"Nats-Msg-Id": item.id},
                    )
                )
            elif isinstance(item, r.TimerSpec):
                pending.append(self.timers.schedule(item))
            elif isinstance(item, r.TimerCancel):
                pending.append(self.timers.cancel(item))
            elif isinstance(item, r.Subscribe):
                pending.append(self.messaging.subscribe(item, self.clock()))
            elif isinstance(item, r.Unsubscribe):
                pending.append(self.messaging.unsubscribe(item))
            elif isinstance(item, r.MessagePublish):
                pending.append(self.messaging.publish_message(
                    item.tenant, item.name, item.key, item.variables, ttl=timedelta(seconds=item.ttl),
                    message_id=item.id, now=self.clock(),
                ))
            elif isinstance(item, r.SignalBroadcast):
                pending.append(self.messaging.broadcast_signal(item.tenant, item.name, item.variables,
                                                               signal_id=item.id))
            else:
                log.warning("no publisher for effect %s", type(item).__name__)
        if pending:
            await asyncio.gather(*pending)

    async def _delete_usertask(self, key: str) -> None:
        with contextlib.suppress(KeyNotFoundError):
            await self.usertasks.delete(key)
