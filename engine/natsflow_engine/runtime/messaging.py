"""Messages and signals: subscriptions in KV, correlation, buffering, start events.

Layout in the ``nf_messages`` bucket (every name and key is a :func:`layout.token`)::

    msub.<tenant>.<name>.<correlation key>   the catches waiting for that message
    mbuf.<tenant>.<name>.<correlation key>   messages buffered with a TTL
    ssub.<tenant>.<signal>                   the catches waiting for that signal

Each key holds a small list updated with compare-and-set, so publishing reads one key.

Conditional start events at process level start when a caller asks for them to be evaluated
with variables (Camunda 8.9's conditional evaluation): :meth:`Messaging.evaluate_conditions`.

Publishing a message (Zeebe semantics): buffer it when its TTL is positive, then correlate it
to every instance with a matching subscription (once per instance), and start an instance of
each deployed process with a matching message start event. A catch that opens later finds a
buffered message at subscription time. Both sides write before they read, so a message and a
subscription that race still meet; the instance drops a message id it has seen already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from natsflow_engine import layout
from natsflow_engine.bpmn.model import (
    ConditionalTrigger,
    Event,
    MessageTrigger,
    Process,
    SignalTrigger,
    triggers_of,
)
from natsflow_engine.errors import InvalidInputError, NatsflowError
from natsflow_engine.natsutil import cancel_and_wait
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import DefinitionCache, LatestRecord
from natsflow_engine.runtime.expressions import Expressions
from natsflow_engine.store import compare_and_set, publish_command

__all__ = ["ConditionalOutcome", "ConditionalStart", "Messaging", "StartIndex"]

MAX_CONDITIONAL_STARTS = 1000
"""The most instances one conditional evaluation may start (its ``max_starts`` is at most this)."""

log = logging.getLogger(__name__)

_latest_decoder = msgspec.json.Decoder(LatestRecord)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class Buffered(msgspec.Struct, kw_only=True):
    id: str
    expires: str
    variables: dict[str, Any] = {}


class SubsRecord(msgspec.Struct, kw_only=True):
    v: int = 1
    subs: list[tuple[str, int]] = []  # (instance, element instance), oldest first


_subs_decoder = msgspec.json.Decoder(SubsRecord)


class BufferRecord(msgspec.Struct, kw_only=True):
    v: int = 1
    name: str
    key: str
    messages: list[Buffered] = []


_buffer_decoder = msgspec.json.Decoder(BufferRecord)


@dataclass(frozen=True, slots=True)
class ConditionalOutcome:
    """A root-level conditional start event evaluated with a caller's variables: whether its
    condition held, or why it could not be evaluated (``error``; it then starts nothing)."""

    process_id: str
    version: int
    start_event: str
    holds: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ConditionalStart:
    """An instance a conditional evaluation started."""

    process_id: str
    version: int
    start_event: str
    instance: str


class StartIndex:
    """The latest version of every deployed process, kept current by a KV watch, to find
    message and signal start events without reading every definition on each publish."""

    def __init__(
        self,
        workflows: KeyValue,
        definitions: DefinitionCache,
        on_version: Callable[[str, str, int], Awaitable[None]] | None = None,
    ) -> None:
        self.workflows = workflows
        self.definitions = definitions
        self.on_version = on_version
        self.latest: dict[tuple[str, str], int] = {}
        self.retention: dict[tuple[str, str], tuple[float | None, float | None]] = {}
        """(live, archive) of the processes whose latest pointer carries a retention."""
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> StartIndex:
        self._task = asyncio.create_task(self._watch(), name="natsflow-start-index")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def _watch(self) -> None:
        watcher = await self.workflows.watch("*.*.latest")
        try:
            async for entry in watcher:
                if entry is None:
                    self._ready.set()
                    continue
                tenant = entry.key.split(".", 1)[0]
                if entry.value:
                    rec = _latest_decoder.decode(entry.value)
                    if self.on_version is not None:
                        try:
                            await self.on_version(tenant, rec.process_id, rec.version)
                        except Exception:
                            log.exception("scheduling the start events of %s v%d failed", rec.process_id, rec.version)
                    self.latest[(tenant, rec.process_id)] = rec.version  # after: "seen" means "scheduled"
                    if rec.retention is None:
                        self.retention.pop((tenant, rec.process_id), None)
                    else:
                        self.retention[(tenant, rec.process_id)] = (rec.retention.live, rec.retention.archive)
        finally:
            stop: Callable[[], Awaitable[None]] = watcher.stop  # nats-py leaves it unannotated
            with contextlib.suppress(Exception):
                await stop()

    async def starts(
        self, tenant: str, kind: type[MessageTrigger] | type[SignalTrigger], name: str, now: datetime
    ) -> list[tuple[Process, Event]]:
        """(process, start event) pairs of the tenant's latest versions started by ``name``.

        A start event's name is an expression evaluated at ``now`` (the engine's clock, so
        ``now()`` works in it); a name that fails to evaluate starts nothing (logged)."""
        found = []
        x = Expressions(now)
        for (t, pid), version in list(self.latest.items()):
            if t != tenant:
                continue
            try:
                process = await self.definitions.get(tenant, pid, version)
            except Exception:
                continue
            for sid in process.all_start_events:
                start = process.nodes[sid]
                if not isinstance(start, Event) or start.parent != process.id:
                    continue
                for trigger in triggers_of(start.trigger):
                    if not isinstance(trigger, MessageTrigger | SignalTrigger) or not isinstance(trigger, kind):
                        continue
                    try:
                        started_by = x.value(trigger.name, {})
                    except NatsflowError as exc:
                        log.warning("name of start event %s of %s cannot be evaluated: %s", sid, pid, exc)
                        continue
                    if started_by == name:
                        found.append((process, start))
                        break  # one instance per start event, whichever of its definitions matched
        return found


    async def conditional_starts(
        self, tenant: str, variables: dict[str, Any], now: datetime, versions: dict[str, int] | None = None
    ) -> list[ConditionalOutcome]:
        """Every root-level conditional start event of the tenant's latest versions (of the
        processes and versions ``versions`` names, when given), evaluated with ``variables``
        alone, in process id and document order."""
        x = Expressions(now)
        if versions is None:
            versions = {pid: v for (t, pid), v in self.latest.items() if t == tenant}
        found = []
        for pid, version in sorted(versions.items()):
            try:
                process = await self.definitions.get(tenant, pid, version)
            except NatsflowError as exc:
                log.warning("conditional starts of %s v%d cannot be read: %s", pid, version, exc)
                continue
            for sid in process.all_start_events:
                start = process.nodes[sid]
                if not isinstance(start, Event):
                    continue
                condition = next((t for t in triggers_of(start.trigger) if isinstance(t, ConditionalTrigger)), None)
                if condition is None:
                    continue
                try:
                    holds, error = x.condition(condition.condition, variables), None
                except NatsflowError as exc:
                    holds, error = False, str(exc)
                found.append(ConditionalOutcome(pid, version, sid, holds, error))
        return found


class Messaging:
    """Correlates messages and signals; used by the engine (effects) and the API."""

    def __init__(
        self,
        js: JetStreamContext,
        messages: KeyValue,
        starts: StartIndex | None = None,
        instances: KeyValue | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.js = js
        self.kv = messages
        self.starts = starts
        self.instances = instances
        self.clock = clock or _wall_clock
        """The time of ``now()`` in start event names and of message expiry (the engine's clock)."""

    # --- subscriptions (engine effects) ---------------------------------------------------------

    async def subscribe(self, sub: r.Subscribe, now: datetime) -> None:
        entry_id = (sub.instance, sub.ei)

        def add(subs: list[tuple[str, int]]) -> list[tuple[str, int]]:
            # effects are delivered at least once: a repeated Subscribe must not count twice
            return subs if entry_id in subs else [*subs, entry_id]

        if sub.kind == "signal":
            await self._change(layout.signal_subscriptions_key(sub.tenant, sub.name), add)
            return
        await self._change(layout.message_subscriptions_key(sub.tenant, sub.name, sub.key), add)
        try:
            entry = await self.kv.get(layout.message_buffer_key(sub.tenant, sub.name, sub.key))
        except KeyNotFoundError:
            return
        record = _buffer_decoder.decode(entry.value or b"")
        stamp = now.isoformat()
        for message in record.messages:
            if message.expires > stamp:
                await self._correlate(sub.tenant, sub.instance, sub.ei, sub.name, sub.key, message.id,
                                      message.variables)

    async def unsubscribe(self, sub: r.Unsubscribe) -> None:
        entry_id = (sub.instance, sub.ei)
        if sub.kind == "signal":
            key = layout.signal_subscriptions_key(sub.tenant, sub.name)
        else:
            key = layout.message_subscriptions_key(sub.tenant, sub.name, sub.key)
        await self._change(key, lambda subs: [s for s in subs if tuple(s) != entry_id])

    async def _subscriptions(self, key: str) -> list[tuple[str, int]]:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return []
        return [(str(i), int(e)) for i, e in _subs_decoder.decode(entry.value or b"").subs]

    async def _change(self, key: str, change: Callable[[list[tuple[str, int]]], list[tuple[str, int]]]) -> None:
        async def apply(current: bytes | None) -> bytes:
            subs = [(str(i), int(e)) for i, e in _subs_decoder.decode(current).subs] if current is not None else []
            return msgspec.json.encode(SubsRecord(subs=change(subs)))

        await compare_and_set(self.kv, key, apply)

    # --- publishing -----------------------------------------------------------------------------

    async def publish_message(
        self,
        tenant: str,
        name: str,
        correlation_key: str,
        variables: dict[str, Any],
        *,
        ttl: timedelta = timedelta(0),
        message_id: str | None = None,
        now: datetime | None = None,
    ) -> int:
        """Correlate (and buffer, with a TTL) a message; returns how many catches and starts it reached."""
        now = now or self.clock()
        message_id = message_id or r.new_id()
        if ttl > timedelta(0):
            await self._buffer(tenant, name, correlation_key, Buffered(
                id=message_id, expires=(now + ttl).isoformat(), variables=variables), now)
        reached = 0
        seen: set[str] = set()
        for instance, ei in await self._subscriptions(layout.message_subscriptions_key(tenant, name, correlation_key)):
            if instance in seen:
                continue  # one correlation per instance
            seen.add(instance)
            await self._correlate(tenant, instance, ei, name, correlation_key, message_id, variables)
            reached += 1
        if self.starts is not None:
            for process, start in await self.starts.starts(tenant, MessageTrigger, name, now):
                iid = layout.idempotent_instance_id(tenant, process.id, f"msg:{message_id}")
                if correlation_key and not await self._claim_key(tenant, process.id, correlation_key, iid):
                    continue  # Zeebe: one active instance per correlation key of a message start
                await self._launch(tenant, process, start, f"msg:{message_id}", variables)
                reached += 1
        return reached

    async def _claim_key(self, tenant: str, process_id: str, key: str, iid: str) -> bool:
        """Claim ``key`` for a new instance unless an active instance of the process holds it."""
        mine = iid.encode()

        async def claim(current: bytes | None) -> bytes | None:
            if current is None:
                return mine
            if current == mine or await self._active(tenant, current.decode()):
                return None  # the same message again (its launch is idempotent), or held
            return mine

        written = await compare_and_set(self.kv, layout.message_start_key(tenant, process_id, key), claim)
        return written.value == mine

    async def _active(self, tenant: str, instance: str) -> bool:
        if self.instances is None:
            return False
        try:
            entry = await self.instances.get(layout.instance_key(tenant, instance))
        except KeyNotFoundError:
            return True  # launched a moment ago and not applied yet: treat as active
        return r.decode_state(entry.value or b"").state == "active"

    async def broadcast_signal(self, tenant: str, name: str, variables: dict[str, Any], *,
                               signal_id: str | None = None, origin: str | None = None) -> int:
        signal_id = signal_id or r.new_id()
        reached = 0
        for instance, ei in await self._subscriptions(layout.signal_subscriptions_key(tenant, name)):
            if instance == origin:
                continue  # the throwing instance caught its own signal in its step
            cmd = r.SignalReceived(id=f"sig.{signal_id}.{instance}.{ei}", tenant=tenant, instance=instance,
                                   ei=ei, name=name, variables=variables)
            await self._send(cmd)
            reached += 1
        if self.starts is not None:
            for process, start in await self.starts.starts(tenant, SignalTrigger, name, self.clock()):
                await self._launch(tenant, process, start, f"sig:{signal_id}", variables)
                reached += 1
        return reached

    async def evaluate_conditions(
        self,
        tenant: str,
        variables: dict[str, Any],
        *,
        versions: dict[str, int] | None = None,
        evaluation_id: str | None = None,
        max_starts: int = 100,
    ) -> tuple[list[ConditionalStart], list[ConditionalOutcome]]:
        """Start an instance at each root-level conditional start event of the tenant's latest
        versions (or of ``versions``) whose condition holds for ``variables``, with those
        variables; returns what started and the events whose condition could not be evaluated.

        Nothing starts when more than ``max_starts`` would (``InvalidInputError``). Instance ids
        derive from ``evaluation_id`` and the start event, so a retried evaluation with the same
        id starts nothing twice."""
        if not 1 <= max_starts <= MAX_CONDITIONAL_STARTS:
            raise InvalidInputError(f"max_starts must be between 1 and {MAX_CONDITIONAL_STARTS}, not {max_starts}")
        if self.starts is None:
            return [], []
        outcomes = await self.starts.conditional_starts(tenant, variables, self.clock(), versions)
        chosen = [o for o in outcomes if o.holds]
        if len(chosen) > max_starts:
            raise InvalidInputError(
                f"{len(chosen)} conditional start events hold for these variables, more than max_starts "
                f"({max_starts}); nothing was started: raise max_starts or name the process_id"
            )
        evaluation_id = evaluation_id or r.new_id()
        started = []
        for o in chosen:
            iid = layout.idempotent_instance_id(tenant, o.process_id, f"cond:{evaluation_id}:{o.start_event}")
            await self._send(r.Launch(id=f"launch.{iid}", tenant=tenant, instance=iid, process_id=o.process_id,
                                      version=o.version, variables=variables, start_event=o.start_event))
            started.append(ConditionalStart(o.process_id, o.version, o.start_event, iid))
        return started, [o for o in outcomes if o.error is not None]

    # --- helpers --------------------------------------------------------------------------------

    async def _buffer(self, tenant: str, name: str, key: str, message: Buffered, now: datetime) -> None:
        async def add(current: bytes | None) -> bytes:
            record = _buffer_decoder.decode(current) if current is not None else BufferRecord(name=name, key=key)
            stamp = now.isoformat()
            record.messages = [m for m in record.messages if m.expires > stamp and m.id != message.id]
            record.messages.append(message)
            return msgspec.json.encode(record)

        await compare_and_set(self.kv, layout.message_buffer_key(tenant, name, key), add)

    async def _correlate(self, tenant: str, instance: str, ei: int, name: str, key: str, message_id: str,
                         variables: dict[str, Any]) -> None:
        await self._send(r.MessageCorrelated(id=f"msg.{message_id}.{instance}", tenant=tenant, instance=instance,
                                             ei=ei, name=name, key=key, message_id=message_id,
                                             variables=variables))

    async def _launch(self, tenant: str, process: Process, start: Event, key: str, variables: dict[str, Any]) -> None:
        iid = layout.idempotent_instance_id(tenant, process.id, key)
        await self._send(r.Launch(id=f"launch.{iid}", tenant=tenant, instance=iid, process_id=process.id,
                                  variables=variables, start_event=start.id))

    async def _send(self, cmd: r.AnyCommand) -> None:
        await publish_command(self.js, cmd)
