"""How natsflow writes to NATS: one place per primitive.

::

    publish_command(js, cmd)            a command onto the engine's command stream (deduplicated
                                        by its id), from the API, triggers, workers, the engine
    compare_and_set(kv, key, change)    read, change, write under the revision; retried on a
                                        conflict as a RetryPolicy says, ConcurrentUpdateError when
                                        the tries are used up
    open_or_create_bucket(js, config)   a bucket handle, created when missing
    InstanceStore                       how a step's record and effects reach NATS: load (cache
                                        or KV), commit (record with its outbox, under the
                                        revision; an ended instance's record with its live
                                        retention as TTL), publish (the index entry, then one
                                        publisher per effect type); the record, index and
                                        JetStream effect messages go through the engine's lean
                                        :class:`~natsflow_engine.publisher.JetStreamPublisher`
    JetStreamTimers                     timer effects as JetStream message schedules

Every name of a stream, bucket, subject or consumer comes from :mod:`natsflow_engine.layout`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeAlias, TypeVar, assert_never

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, PubAck
from nats.js.errors import APIError, BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from natsflow_engine import layout, tracing
from natsflow_engine.errors import ConcurrentUpdateError, RecordTooLargeError
from natsflow_engine.index import Indexed, IndexWrite, InstanceIndex
from natsflow_engine.publisher import JetStreamPublisher
from natsflow_engine.runtime import records as r

if TYPE_CHECKING:  # messaging writes through this module
    from natsflow_engine.runtime.messaging import Messaging

__all__ = [
    "DEFAULT_RETRY",
    "ConcurrentUpdateError",
    "Effect",
    "EffectPublisher",
    "InstanceStore",
    "JetStreamTimers",
    "RecordTooLargeError",
    "RetryPolicy",
    "TimerService",
    "Written",
    "compare_and_set",
    "open_or_create_bucket",
    "publish_command",
]

Effect: TypeAlias = (
    r.Job
    | r.HistoryRecord
    | r.UserTask
    | r.UserTaskDone
    | r.TimerSpec
    | r.TimerCancel
    | r.Subscribe
    | r.Unsubscribe
    | r.SignalBroadcast
    | r.MessagePublish
    | r.AnyCommand
)
"""What a step asks of the world; kept in the record's outbox until the next step."""


# --- commands -----------------------------------------------------------------------------------


def publish_command(
    js: JetStreamContext,
    cmd: r.AnyCommand,
    *,
    data: bytes | None = None,
    msg_id: str | None = None,
    subject: str | None = None,
) -> Awaitable[PubAck]:
    """Publish ``cmd`` to its instance's command subject (or ``subject``: a worker's result
    subject); JetStream drops a copy with the same id (``msg_id``, by default the command id)
    inside the duplicate window. ``data`` is the command already encoded, where the caller has
    it."""
    return js.publish(
        subject or layout.command_subject(cmd.tenant, cmd.instance),
        data if data is not None else r.encode(cmd),
        headers=tracing.inject({"Nats-Msg-Id": msg_id or cmd.id}),
    )


# --- compare-and-set ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often a compare-and-set is tried when concurrent writers keep winning.

    A conflict means a newer value is there already, so the next try reads it at once (no
    pause). When every try lost, :class:`ConcurrentUpdateError` is raised: the API answers
    ``conflict``, a command that caused it is left unacknowledged and redelivered.
    """

    attempts: int = 20
    """Tries of one read-change-write before giving up (at least 1)."""


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class Written:
    """The outcome of :func:`compare_and_set`."""

    value: bytes | None
    """What the key holds now (None: absent)."""
    revision: int | None
    changed: bool
    """Whether this call wrote it (False: ``change`` kept the value as it was)."""


Change = Callable[[bytes | None], Awaitable[bytes | None]]
"""Given the current value (None: absent), the new value, or None to keep it as it is. May
raise to abort (the error propagates), or ``KeyWrongLastSequenceError`` to try again."""


async def compare_and_set(
    kv: KeyValue, key: str, change: Change, policy: RetryPolicy = DEFAULT_RETRY
) -> Written:
    """Read ``key``, ask ``change`` for its new value and write it under the revision read
    (create-if-absent when it was absent); on a conflict read again, up to ``policy.attempts``
    times, then raise :class:`ConcurrentUpdateError`."""
    for _ in range(max(1, policy.attempts)):
        current: bytes | None
        try:
            entry = await kv.get(key)
            current, revision = entry.value or b"", entry.revision
        except KeyNotFoundError:
            current, revision = None, None
        try:
            new = await change(current)
            if new is None:
                return Written(current, revision, changed=False)
            if revision is None:
                revision = await kv.create(key, new)
            else:
                revision = await kv.update(key, new, last=revision)
        except KeyWrongLastSequenceError:
            continue
        return Written(new, revision, changed=True)
    raise ConcurrentUpdateError(key, policy.attempts)


# --- buckets ------------------------------------------------------------------------------------


async def open_or_create_bucket(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """Open a bucket; create it with ``config`` when missing (an existing one keeps its settings:
    replicas and limits are an operator's choice, never whichever process starts first)."""
    assert config.bucket is not None
    try:
        return await js.key_value(config.bucket)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(config)
    except Exception:  # another process created it first (with other settings): use it
        return await js.key_value(config.bucket)


# --- timers -------------------------------------------------------------------------------------


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
        command: r.AnyCommand = spec.launch or r.TimerFired(
            id=spec.id, tenant=spec.tenant, instance=spec.instance, ei=spec.ei, timer=spec.id, due=spec.due
        )
        if due <= datetime.now(UTC) + timedelta(milliseconds=500):
            await publish_command(self.js, command, msg_id=spec.id)
            return
        at = (due + timedelta(seconds=1)).replace(microsecond=0) if due.microsecond else due
        await self.js.publish(
            layout.schedule_subject(spec.tenant, spec.instance, spec.id),
            r.encode(command),
            headers={
                "Nats-Schedule": f"@at {at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
                "Nats-Schedule-Target": layout.command_subject(spec.tenant, spec.instance),
                "Nats-Msg-Id": f"sched.{spec.id}",
            },
        )

    async def cancel(self, spec: r.TimerCancel) -> None:
        with contextlib.suppress(Exception):
            await self.js.purge_stream(
                layout.STREAM_COMMANDS, subject=layout.schedule_subject(spec.tenant, spec.instance, spec.id)
            )


# --- effects ------------------------------------------------------------------------------------


async def _published(js: JetStreamContext, subject: str, data: bytes, headers: dict[str, str]) -> int:
    return (await js.publish(subject, data, headers=headers)).seq


async def _as_awaited(result: Awaitable[int]) -> Awaitable[int]:
    return result


def abandon(pending: list[Awaitable[object]]) -> None:
    """Give up on ``pending`` without waiting: coroutines never started are closed, and the
    outcome of futures is retrieved when it comes (no "never retrieved" warnings)."""
    for item in pending:
        if asyncio.iscoroutine(item):
            item.close()
        elif isinstance(item, asyncio.Future):
            item.add_done_callback(lambda f: f.cancelled() or f.exception())


async def wait_all(pending: list[Awaitable[object]]) -> None:
    """Wait for every one of ``pending`` (each has its outcome retrieved), then raise the first
    failure, if any; cancelled, cancel what is still pending. Futures (the publisher's
    acknowledgements, which mostly arrive in order) are awaited one after another, without
    ``asyncio.gather``'s wrapper; a coroutine is started at once as a task."""
    if len(pending) <= 1:
        if pending:
            await pending[0]
        return
    started = [item if isinstance(item, asyncio.Future) else asyncio.ensure_future(item) for item in pending]
    first: BaseException | None = None
    for n, item in enumerate(started):
        try:
            await item
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                for rest in started[n + 1 :]:
                    rest.cancel()
                raise
            first = first or asyncio.CancelledError()  # the item itself was cancelled
        except BaseException as exc:  # every outcome is retrieved, the first one raised
            first = first or exc
    if first is not None:
        raise first


_SHARED_RECORDS = (
    r.UserTask, r.UserTaskDone, r.TimerSpec, r.TimerCancel, r.Subscribe, r.Unsubscribe, r.MessagePublish,
    r.SignalBroadcast,
)
"""Effects that read and change records other effects of a step may change too."""


class EffectPublisher:
    """Publishes effects, each by the one publisher of its type, pipelined.

    With a started :class:`~natsflow_engine.publisher.JetStreamPublisher` the JetStream
    publishes (jobs, history, commands, and the store's record and index writes) go through
    it; without one through nats-py's ``js.publish``, with the same messages."""

    def __init__(
        self,
        js: JetStreamContext,
        usertasks: KeyValue,
        timers: TimerService,
        messaging: Messaging,
        clock: Callable[[], datetime],
        *,
        publisher: JetStreamPublisher | None = None,
    ) -> None:
        self.js = js
        self.usertasks = usertasks
        self.timers = timers
        self.messaging = messaging
        self.clock = clock
        self.publisher = publisher

    def send(self, subject: str, data: bytes, headers: dict[str, str]) -> Awaitable[Awaitable[int]]:
        """Hand one JetStream message to the connection (awaiting the call); await its result
        for the stream sequence (the acknowledgement). The publisher's own coroutine, without
        one of this method's around it."""
        if self.publisher is not None and self.publisher.started:
            return self.publisher.send(subject, data, headers)
        return _as_awaited(_published(self.js, subject, data, headers))

    async def publish(self, effects: list[Effect]) -> None:
        """Send the effects and wait for all of them. JetStream messages are pipelined in list
        order; the others (user tasks, timers, subscriptions, messages, signals) read and change
        shared records, so they run one after another in list order, beside the pipeline (an
        ``Unsubscribe`` and ``Subscribe`` of one element instance must land in that order)."""
        pending: list[Awaitable[object]] = []
        ordered = [effect for effect in effects if isinstance(effect, _SHARED_RECORDS)]
        try:
            for effect in effects:
                if not isinstance(effect, _SHARED_RECORDS):
                    pending.append(await self._one(effect))
        except BaseException:
            abandon(pending)
            raise
        if ordered:
            pending.append(self._one_after_another(ordered))
        await wait_all(pending)

    async def _one_after_another(self, effects: Sequence[Effect]) -> None:
        for effect in effects:
            await (await self._one(effect))

    async def _one(self, effect: Effect) -> Awaitable[object]:
        """The effect sent (JetStream messages) or ready to run (the others), in list order."""
        match effect:
            case r.Job():
                return await self.send(
                    layout.job_subject(effect.tenant, effect.type), r.encode(effect),
                    tracing.inject({"Nats-Msg-Id": effect.key}),
                )
            case r.HistoryRecord():
                return await self.send(
                    layout.history_subject(effect.tenant, effect.instance), r.encode(effect),
                    {"Nats-Msg-Id": f"{effect.instance}.h{effect.step}"},
                )
            case r.UserTask():
                return self.usertasks.put(layout.usertask_key(effect.tenant, effect.id), r.encode(effect))
            case r.UserTaskDone():
                return self._delete_usertask(layout.usertask_key(effect.tenant, effect.id))
            case r.TimerSpec():
                return self.timers.schedule(effect)
            case r.TimerCancel():
                return self.timers.cancel(effect)
            case r.Subscribe():
                return self.messaging.subscribe(effect, self.clock())
            case r.Unsubscribe():
                return self.messaging.unsubscribe(effect)
            case r.MessagePublish():
                return self.messaging.publish_message(
                    effect.tenant, effect.name, effect.key, effect.variables,
                    ttl=timedelta(seconds=effect.ttl), message_id=effect.id, now=self.clock(),
                )
            case r.SignalBroadcast():
                return self.messaging.broadcast_signal(
                    effect.tenant, effect.name, effect.variables, signal_id=effect.id, origin=effect.origin
                )
            case (
                r.Launch() | r.JobCompleted() | r.JobFailed() | r.JobError() | r.UserTaskCompleted()
                | r.Cancel() | r.ResolveIncident() | r.SetVariables() | r.TimerFired()
                | r.MessageCorrelated() | r.SignalReceived() | r.ChildFinished()
            ):
                return await self.send(
                    layout.command_subject(effect.tenant, effect.instance), r.encode(effect),
                    tracing.inject({"Nats-Msg-Id": effect.id}),
                )
            case _:
                assert_never(effect)

    async def _delete_usertask(self, key: str) -> None:
        with contextlib.suppress(KeyNotFoundError):
            await self.usertasks.delete(key)


# --- instance records ---------------------------------------------------------------------------

V = TypeVar("V")


class _Bounded(OrderedDict[str, V]):
    """An LRU map of at most ``limit`` entries."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: str, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.limit:
            self.popitem(last=False)


Loaded: TypeAlias = tuple[r.InstanceState | None, int | None]
"""An instance record and its KV revision (None, None: no record)."""


class InstanceStore:
    """Instance records in KV with an LRU cache, and the outbox of each step.

    A record is taken out of the cache while its step runs (the interpreter changes it in
    place) and only a write that succeeded puts it back, so a failed write never leaves a state
    ahead of KV. A loaded record whose outbox this process has not published is published again
    (JetStream drops the copies: every effect has a deterministic message id), and its index
    entry written again.

    With an ``index``, each commit also writes the instance's index entry when it changed
    (:mod:`natsflow_engine.index`), pipelined with the effects, and an ended instance's record
    is written with its live retention as TTL.
    """

    def __init__(
        self,
        kv: KeyValue,
        effects: EffectPublisher,
        *,
        cache_size: int,
        max_payload: int,
        index: InstanceIndex | None = None,
    ) -> None:
        self.kv = kv
        self.effects = effects
        self.max_payload = max_payload
        self.index = index
        self._cache: _Bounded[tuple[r.InstanceState, int]] = _Bounded(cache_size)
        self._flushed: _Bounded[bool] = _Bounded(cache_size)
        self._indexed: _Bounded[Indexed] = _Bounded(cache_size)
        """The index entry of each cached record as the index has it."""

    async def load(self, key: str, *, expect_new: bool = False) -> Loaded:
        """The record under ``key``; with ``expect_new`` (a launch) no read at all unless it is
        cached: create-if-absent in :meth:`commit` tells a repeated launch. Raises
        ``msgspec.DecodeError`` for a record that does not decode."""
        loaded: Loaded | None = self._cache.pop(key, None)
        read = loaded is None
        if loaded is None:
            loaded = (None, None) if expect_new else await self._read(key)
        state, revision = loaded
        if state is None:
            return state, revision
        entry = self.index.entry(state) if self.index is not None and read else None
        if state.outbox and state.outbox_cmd not in self._flushed:
            repair = self.index.repair(state, entry) if self.index is not None and entry is not None else []
            await self._publish(state.outbox, repair)
            self._flushed.remember(state.outbox_cmd or "", True)
        if entry is not None:
            self._indexed.remember(key, entry)
        return state, revision

    async def reload(self, key: str) -> r.InstanceState | None:
        """The record as KV has it, bypassing (and dropping) the cache."""
        self._cache.pop(key, None)
        state, _ = await self._read(key)
        return state

    async def _read(self, key: str) -> Loaded:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None, None
        if entry.value is None:
            return None, None
        return r.decode_state(entry.value), entry.revision

    async def _publish(self, outbox: list[Effect], index_writes: list[IndexWrite]) -> None:
        """The index writes, then (in send order, pipelined) the effects; waits for all."""
        sent: list[Awaitable[object]] = []
        try:
            for write in index_writes:
                sent.append(await self.effects.send(write.subject, write.data, write.headers))
            await self.effects.publish(outbox)
        except BaseException:
            abandon(sent)
            raise
        await wait_all(sent)

    async def _write(self, key: str, data: bytes, revision: int | None, ttl: float | None) -> int:
        """KV create-if-absent (``revision`` None) or update under ``revision``, with a TTL: one
        publish to the key's subject with ``Nats-Expected-Last-Subject-Sequence`` (0: absent)."""
        headers = {"Nats-Expected-Last-Subject-Sequence": str(revision or 0)}
        if ttl is not None:
            headers["Nats-TTL"] = str(int(ttl))
        try:
            return await (await self.effects.send(f"$KV.{layout.BUCKET_INSTANCES}.{key}", data, headers))
        except APIError as exc:
            if exc.err_code not in (10071, 10164):  # wrong last sequence
                raise
            if revision is not None:
                raise KeyWrongLastSequenceError(exc.description) from exc
        # the key exists: maybe only as a delete or purge marker, which nats-py's create takes over
        return await self.kv.create(key, data, msg_ttl=ttl)

    async def commit(
        self, key: str, revision: int | None, cmd_id: str, state: r.InstanceState, outbox: list[Effect], at: str
    ) -> bool:
        """Write ``state`` with ``outbox`` under ``revision`` (create-if-absent when None), then
        publish the outbox. False: a concurrent write won (nothing written, nothing published).
        Raises :class:`RecordTooLargeError` before writing a record over the limit."""
        state.outbox = outbox
        state.outbox_cmd = cmd_id
        state.outbox_at = at
        data = r.encode(state)
        if len(data) > self.max_payload:
            self._cache.pop(key, None)
            raise RecordTooLargeError(len(data), self.max_payload)
        ttl = self.index.live_ttl(state) if self.index is not None else None
        try:
            revision = await self._write(key, data, revision, ttl)
        except KeyWrongLastSequenceError:
            self._cache.pop(key, None)
            return False
        index_writes: list[IndexWrite] = []
        if self.index is not None:
            previous = self._indexed.pop(key, None)
            entry = self.index.entry(state, previous)
            index_writes = self.index.write(state, entry, previous)
            if state.state == "active":
                self._indexed.remember(key, entry)
        if state.state == "active":
            self._cache.remember(key, (state, revision))
        else:
            self._cache.pop(key, None)
        if tracing.enabled():
            tracing.element_spans(
                [(e.type, e.element_id) for h in outbox if isinstance(h, r.HistoryRecord) for e in h.events if e.element_id]
            )
        try:
            await self._publish(outbox, index_writes)
        except BaseException:  # the next step reads the record, republishes and repairs the entry
            self._cache.pop(key, None)
            self._indexed.pop(key, None)
            raise
        self._flushed.remember(cmd_id, True)
        return True
