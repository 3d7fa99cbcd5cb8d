"""The engine: consumes commands from JetStream, steps instances, publishes effects.

One step, for one command (DESIGN.md section 2), reads as load → decide → commit → publish::

    load      the record (cache or KV); a previous step's effects not known to be published
              are published again (InstanceStore.load)
    decide    skip a command applied already, else run the pure interpreter (Engine._decide)
    commit    KV update(last=revision) of the record with its outbox; a conflict: load again
    publish   the outbox, pipelined, deterministic Nats-Msg-Id; then ack the command

How the record and its effects reach NATS is decided in one place, :mod:`natsflow_engine.store`.
The record keeps the step's effects (its *outbox*) until the next step replaces them, so a
crash between the KV write and the publishes is repaired by whichever replica handles the
instance next, or by the redelivered command; JetStream drops republished effects inside its
duplicate window. Commands of one instance are applied one at a time in stream order; commands
of different instances run concurrently. Any replica can handle any command.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from natsflow_engine import layout, tracing
from natsflow_engine.bpmn.model import Process
from natsflow_engine.errors import ConnectionFailedError, ForbiddenError, NatsflowError, NotFoundError
from natsflow_engine.index import IndexSettings, InstanceIndex, rebuild
from natsflow_engine.natsutil import PullLoop
from natsflow_engine.observability import StepObserver, log_element
from natsflow_engine.publisher import JetStreamPublisher
from natsflow_engine.retention import Sweeper
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import DefinitionCache, resolve_version
from natsflow_engine.runtime.interpreter import (
    StepLimits,
    StepResult,
    engine_incident,
    failed_launch,
    step,
    unreadable_record,
)
from natsflow_engine.runtime.messaging import Messaging, StartIndex
from natsflow_engine.runtime.origin import Origin, check_job_type, dead_letter, origin_of
from natsflow_engine.runtime.poison import DeadLetters
from natsflow_engine.runtime.setup import (
    LayoutSettings,
    ensure_dlq_stream,
    ensure_engine_consumer,
    ensure_layout,
    open_buckets,
)
from natsflow_engine.runtime.starts import first_timer_starts, is_timer_start
from natsflow_engine.store import (
    ConcurrentUpdateError,
    Effect,
    EffectPublisher,
    InstanceStore,
    JetStreamTimers,
    RecordTooLargeError,
    RetryPolicy,
    TimerService,
    compare_and_set,
    publish_command,
)

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
    conflicts: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=50))
    """Revision conflicts tolerated for one command; then :class:`ConcurrentUpdateError` and
    the command is left unacknowledged, for redelivery."""
    fetch_timeout: float = 5.0
    """Seconds a pull request for commands stays open on the server."""
    index: IndexSettings = field(default_factory=IndexSettings)
    """What the instance index keeps and how long ended instances are retained."""
    limits: StepLimits = field(default_factory=StepLimits)
    """What one step may do: element activations (endless loops), call-activity depth."""
    redelivery_delay: float = 1.0
    """Seconds before a command whose step failed is delivered again (doubling per delivery,
    at most the ack wait); after ``LayoutSettings.command_max_deliver`` deliveries it is
    dead-lettered."""


TRANSIENT: tuple[type[Exception], ...] = (
    nats.errors.Error, ConnectionFailedError, ConcurrentUpdateError, TimeoutError, OSError
)
"""Failures of a step that may pass by themselves: the command is delivered again only after
the ack wait, so its delivery limit spans minutes of NATS trouble, not seconds."""


class Verdict(Enum):
    """How a command ends on the stream."""

    ACK = "ack"
    """Applied, or nothing to do (applied before, or changes nothing)."""
    TERM = "term"
    """Nothing to apply, on purpose (a timer start replaced by a newer version)."""
    DEAD = "dead"
    """Cannot ever be applied (undecodable, unknown instance): dead-lettered."""
    CONFLICT = "conflict"
    """A concurrent write won: load again and decide again."""


class Engine:
    """A stateless engine replica. Start any number of them on the same NATS account.

    ``tenant``: the one tenant this engine serves (its connection is that tenant's account);
    commands on another tenant's subjects are refused. None: every tenant of the account."""

    def __init__(
        self,
        nc: Client,
        settings: EngineSettings | None = None,
        *,
        layout_settings: LayoutSettings | None = None,
        clock: Clock = wall_clock,
        timers: TimerService | None = None,
        tenant: str | None = None,
    ) -> None:
        self.nc = nc
        self.tenant = layout.validate_tenant(tenant) if tenant is not None else None
        self.js = nc.jetstream()
        self.settings = settings or EngineSettings()
        self.layout = layout_settings or LayoutSettings()
        self.clock = clock
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._loop: PullLoop | None = None
        self._advisories: list[Subscription] = []
        self._stopping = asyncio.Event()
        self.timers: TimerService = timers or JetStreamTimers(self.js)
        self.steps = 0
        self.conflicts = 0
        self.observer = StepObserver()
        self._backfill: asyncio.Task[int] | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> Engine:
        await ensure_layout(self.js, self.layout, update=True)
        await ensure_dlq_stream(self.js, replicas=self.layout.replicas)
        buckets = await open_buckets(self.js)
        self.kv = buckets[layout.BUCKET_INSTANCES]
        self.workflows = buckets[layout.BUCKET_WORKFLOWS]
        self.definitions = DefinitionCache(self.workflows)
        self.start_index = await StartIndex(self.workflows, self.definitions, self._version_deployed).start()
        self.messaging = Messaging(
            self.js, buckets[layout.BUCKET_MESSAGES], self.start_index, self.kv, clock=self.clock
        )
        self.publisher = await JetStreamPublisher(self.nc).start()
        effects = EffectPublisher(
            self.js, buckets[layout.BUCKET_USERTASKS], self.timers, self.messaging, self.clock, publisher=self.publisher
        )
        index_settings = replace(self.settings.index, deployed=self.start_index.retention)  # Workflow retention
        index = await InstanceIndex.open(self.js, index_settings, max_payload=self.layout.max_payload)
        self.store = InstanceStore(
            self.kv, effects, cache_size=self.settings.cache_size, max_payload=self.layout.max_payload, index=index
        )
        self.sweeper = Sweeper(self.js, index, self.clock, publisher=self.publisher).start()
        if index.backfill:  # records older than the index
            self._backfill = asyncio.create_task(rebuild(self.js, self.kv, index), name="index-backfill")
        self.dead_letters = DeadLetters(self.js, self.store, self.clock)
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
            recreate=functools.partial(ensure_engine_consumer, self.js, self.layout),
        ).start()
        self._advisories = [
            await self.nc.subscribe(
                layout.job_max_deliveries_advisories(),
                queue=layout.ENGINE_ADVISORY_QUEUE,
                cb=self._on_max_deliveries,
            ),
            await self.nc.subscribe(
                layout.command_max_deliveries_advisories(),
                queue=layout.ENGINE_ADVISORY_QUEUE,
                cb=self._on_command_max_deliveries,
            ),
        ]
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
        await publish_command(self.js, command)
        with contextlib.suppress(Exception):
            await self.js.delete_msg(layout.STREAM_JOBS, seq)

    async def _on_command_max_deliveries(self, msg: Msg) -> None:
        """A command was delivered as often as the engine consumer allows without being
        applied (a replica crashed on it each time): dead-letter it, with an incident."""
        try:
            advisory = json.loads(msg.data)
            seq = int(advisory["stream_seq"])
            stored = await self.js.get_msg(layout.STREAM_COMMANDS, seq)
        except Exception as exc:  # applied (and so removed) meanwhile
            log.info("command max-deliveries advisory not actionable: %s", exc)
            return
        reason = f"delivered {advisory.get('deliveries', '?')} times without being applied (the engine failed each time)"
        await self._dead_letter(stored.subject or "", stored.data or b"", seq, reason)
        with contextlib.suppress(Exception):
            await self.js.delete_msg(layout.STREAM_COMMANDS, seq)

    async def _dead_letter(self, subject: str, data: bytes, seq: int, reason: str) -> bool:
        """Keep the command in the dead-letter stream and raise its incident; False when the
        dead letter could not be stored (the command then stays on the command stream)."""
        try:
            await self.dead_letters.keep(subject, data, seq, reason)
        except Exception as exc:
            log.error("command %s:%d not dead-lettered (%s); it stays on %s", layout.STREAM_COMMANDS, seq, exc,
                      layout.STREAM_COMMANDS)
            return False
        await self.dead_letters.incident(data, reason)
        return True

    async def _version_deployed(self, tenant: str, process_id: str, version: int) -> None:
        """A new latest version: schedule its timer start events, once across all replicas
        (a compare-and-set marker in the workflows bucket elects the replica that does it)."""
        process = await self.definitions.get(tenant, process_id, version)
        specs = first_timer_starts(tenant, process, version, self.clock())
        if not specs:
            return
        value = str(version).encode()

        async def claim(current: bytes | None) -> bytes | None:
            return None if current == value else value  # None: scheduled already

        marker = layout.timer_starts_key(tenant, process_id)
        if not (await compare_and_set(self.workflows, marker, claim)).changed:
            return  # another replica won
        for spec in specs:
            await self.timers.schedule(spec)
        log.info("scheduled %d timer start event(s) of %s version %d", len(specs), process_id, version)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop pulling, let in-flight commands finish (bounded), then cancel the rest."""
        self._stopping.set()
        advisories, self._advisories = self._advisories, []
        for advisory in advisories:
            with contextlib.suppress(Exception):
                await advisory.unsubscribe()
        if self._loop is not None:
            await self._loop.stop_pulling()
            await self._loop.drain(timeout)
            self._loop = None
        await self.start_index.stop()
        await self.sweeper.stop()
        await self.publisher.stop()
        backfill, self._backfill = self._backfill, None
        if backfill is not None:
            backfill.cancel()
            await asyncio.wait([backfill])
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
        key = layout.instance_key_of_command(msg.subject)
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

    # --- one command: load → decide → commit → publish ------------------------------------------

    async def _apply(self, msg: Msg) -> None:
        reason = ""
        try:
            cmd = r.command_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            verdict, reason = Verdict.DEAD, f"the command does not decode: {exc}"
        else:
            try:
                if tracing.enabled():
                    tag = type(cmd).__struct_config__.tag
                    attributes = {
                        "natsflow.tenant": cmd.tenant, "natsflow.instance": cmd.instance, "natsflow.command": cmd.id
                    }
                    with tracing.span(f"step {tag}", msg.headers, attributes):
                        verdict = await self._run(cmd, origin_of(msg.subject, cmd, self.tenant))
                else:  # no span, and the message's headers are never parsed
                    verdict = await self._run(cmd, origin_of(msg.subject, cmd, self.tenant))
            except ForbiddenError as exc:  # the origin does not allow it
                where = await dead_letter(self.js, msg, str(exc))
                log.warning("command %s refused, dead-lettered on %s: %s", cmd.id, where, exc)
                verdict = Verdict.TERM
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed(msg, cmd, exc)
                return
            if verdict is Verdict.DEAD:
                reason = f"instance {cmd.instance} does not exist"
        if verdict is Verdict.DEAD:
            seq = msg.metadata.sequence.stream
            if not await self._dead_letter(msg.subject, msg.data, seq, reason):
                return  # left unacknowledged: redelivered, never dropped
        await (msg.ack() if verdict is Verdict.ACK else msg.term())

    async def _failed(self, msg: Msg, cmd: r.AnyCommand, exc: Exception) -> None:
        """The step raised: deliver the command again after a delay, or, on its last allowed
        delivery, dead-letter it with an incident."""
        meta = msg.metadata
        log.error("command %s of %s.%s failed (delivery %d of %d): %s: %s", cmd.id, cmd.tenant, cmd.instance,
                  meta.num_delivered, self.layout.command_max_deliver, type(exc).__name__, exc)
        if meta.num_delivered >= self.layout.command_max_deliver:
            reason = f"failed on each of {meta.num_delivered} deliveries, last: {type(exc).__name__}: {exc}"
            if await self._dead_letter(msg.subject, msg.data, meta.sequence.stream, reason):
                await msg.term()
            return
        delay = min(self.settings.redelivery_delay * 2 ** (meta.num_delivered - 1), self.layout.command_ack_wait)
        if isinstance(exc, TRANSIENT):
            delay = self.layout.command_ack_wait  # NATS trouble: give it time to pass
        with contextlib.suppress(Exception):
            await msg.nak(delay=delay)

    async def _run(self, cmd: r.AnyCommand, origin: Origin) -> Verdict:
        """Apply ``cmd``, loading again after each conflict, as ``EngineSettings.conflicts`` allows."""
        key = layout.instance_key(cmd.tenant, cmd.instance)
        self.observer.begin(cmd.tenant, cmd.instance)
        for attempt in range(self.settings.conflicts.attempts):
            try:
                verdict = await self._attempt(key, cmd, origin, first=attempt == 0)
            except msgspec.DecodeError as exc:
                await self._corrupt_record(cmd, str(exc))
                verdict = Verdict.TERM
            if verdict is not Verdict.CONFLICT:
                return verdict
            self.conflicts += 1
            self.observer.end(cmd, "conflict")
        raise ConcurrentUpdateError(key, self.settings.conflicts.attempts)  # redelivered after its ack wait

    async def _attempt(self, key: str, cmd: r.AnyCommand, origin: Origin, *, first: bool) -> Verdict:
        # a launch almost always names a new instance: skip the read, and let the
        # create-if-absent of the commit tell a repeated launch (conflict, then a real read)
        state, revision = await self.store.load(key, expect_new=first and isinstance(cmd, r.Launch))
        decided = await self._decide(state, cmd, origin)
        if isinstance(decided, Verdict):
            return decided
        outbox: list[Effect] = [*decided.effects]
        if decided.history is not None:
            outbox.append(decided.history)
        try:
            written = await self.store.commit(key, revision, cmd.id, decided.state, outbox, self.clock().isoformat())
        except RecordTooLargeError as exc:
            fresh = await self.incident_for_oversized(key, cmd, exc, launch=state is None)
            outbox = [fresh.history] if fresh.history else []
            written = await self.store.commit(key, revision, cmd.id, fresh.state, outbox, self.clock().isoformat())
        if not written:
            return Verdict.CONFLICT
        self.steps += 1
        self.observer.end(cmd, "applied", outbox)
        return Verdict.ACK

    async def _decide(
        self, state: r.InstanceState | None, cmd: r.AnyCommand, origin: Origin
    ) -> StepResult | Verdict:
        """The interpreter's step, unless the command needs none (or its origin forbids it:
        :class:`ForbiddenError`)."""
        if state is None and not isinstance(cmd, r.Launch):
            return Verdict.DEAD
        if state is not None:
            log_element(element_of(state, cmd))
            check_job_type(origin, state, cmd)
        if state is not None and cmd.id in state.applied:
            self.observer.end(cmd, "duplicate")
            return Verdict.ACK
        if state is not None and isinstance(cmd, r.Launch):
            log.info("launch %s: instance %s exists already", cmd.id, state.id)
            return Verdict.ACK
        result = await self._step(state, cmd)
        if result is None or not result.changed:
            self.observer.end(cmd, "error" if result is None else "unchanged")
            return Verdict.TERM if result is None else Verdict.ACK
        return result

    async def _corrupt_record(self, cmd: r.AnyCommand, error: str) -> None:
        """The record does not decode: raise an incident in the instance's history, keep the
        record as it is for an operator to inspect or repair, and leave the command unapplied."""
        log.error("instance record %s.%s is corrupt (%s); command %s not applied", cmd.tenant, cmd.instance, error,
                  cmd.id)
        record = unreadable_record(cmd, error, self.clock())
        await self.js.publish(
            layout.history_subject(cmd.tenant, cmd.instance),
            r.encode(record),
            headers={"Nats-Msg-Id": f"{cmd.instance}.corrupt.{cmd.id}"},
        )

    async def _step(self, state: r.InstanceState | None, cmd: r.AnyCommand) -> StepResult | None:
        """Run the interpreter; a failure of the interpreter becomes an incident, never a crash."""
        now = self.clock()
        try:
            if isinstance(cmd, r.Launch):
                index = self.start_index.latest
                version = await resolve_version(self.workflows, cmd.tenant, cmd.process_id, cmd.version, latest=index)
                cmd = msgspec.structs.replace(cmd, version=version)
                process: Process | None = await self.definitions.get(cmd.tenant, cmd.process_id, version)
                latest = index.get((cmd.tenant, cmd.process_id), version)
                if version < latest and process is not None and is_timer_start(process, cmd.start_event):
                    log.info("timer start of %s v%d replaced by v%d; not launched", cmd.process_id, version, latest)
                    return None
            else:
                assert state is not None
                process = await self.definitions.get(state.tenant, state.process_id, state.version)
        except NotFoundError as exc:
            log.error("command %s: %s", cmd.id, exc)
            if state is None:
                assert isinstance(cmd, r.Launch)
                return failed_launch(cmd, f"definition unavailable: {exc}", now)
            return self._engine_incident(state, cmd, f"definition unavailable: {exc}")
        try:
            return step(process, state, cmd, now, self.settings.limits)
        except Exception as exc:
            log.exception("interpreter failed on command %s of instance %s", cmd.id, cmd.instance)
            if state is None:
                assert isinstance(cmd, r.Launch)
                return failed_launch(cmd, f"internal error: {type(exc).__name__}: {exc}", now)
            fresh = await self.store.reload(layout.instance_key(cmd.tenant, cmd.instance))
            if fresh is None:
                return None
            return self._engine_incident(fresh, cmd, f"internal error: {type(exc).__name__}: {exc}")

    def _engine_incident(
        self, state: r.InstanceState, cmd: r.AnyCommand, message: str, kind: str = "engine"
    ) -> StepResult:
        return engine_incident(state, cmd, message, self.clock(), kind)

    async def incident_for_oversized(
        self, key: str, cmd: r.AnyCommand, exc: RecordTooLargeError, *, launch: bool = False
    ) -> StepResult:
        """The step would write a record over the limit: the record as it was, with an
        incident; a launch becomes a failed instance with that incident."""
        if launch and isinstance(cmd, r.Launch):
            return failed_launch(cmd, f"{exc}; the instance was not started", self.clock(), kind="payload")
        fresh = await self.store.reload(key)
        message = f"{exc}; variables not applied"
        if fresh is None:
            raise NatsflowError(message)
        return self._engine_incident(fresh, cmd, message, kind="payload")


def element_of(state: r.InstanceState, cmd: r.AnyCommand) -> str | None:
    """The element a command concerns (for the log lines of its step), if any."""
    match cmd:
        case r.ResolveIncident():
            return next((i.element_id for i in state.incidents if i.id == cmd.incident), None)
        case r.UserTaskCompleted():
            tail = cmd.task.rpartition(".")[2]  # <instance>.<ei>
            ei = state.eis.get(int(tail)) if tail.isdigit() else None
        case _:
            key = getattr(cmd, "ei", None)
            ei = state.eis.get(key) if isinstance(key, int) else None
    return ei.el if ei is not None else None
