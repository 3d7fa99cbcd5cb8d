"""Messages and signals: subscriptions in KV, correlation, buffering, start events.

Layout in the ``nf_messages`` bucket (every name and key is a :func:`layout.token`)::

    msub.<tenant>.<name>.<correlation key>   the catches waiting for that message
    mbuf.<tenant>.<name>.<correlation key>   messages buffered with a TTL
    ssub.<tenant>.<signal>                   the catches waiting for that signal

Each key holds a small list updated with compare-and-set, so publishing reads one key.

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
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from natsflow_engine import layout
from natsflow_engine.bpmn.model import Event, MessageTrigger, Process, SignalTrigger
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import DefinitionCache, LatestRecord
from natsflow_engine.runtime.expressions import Expressions
from natsflow_engine.store import compare_and_set, publish_command

__all__ = ["Messaging", "StartIndex"]

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
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> StartIndex:
        self._task = asyncio.create_task(self._watch(), name="natsflow-start-index")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
                trigger = start.trigger
                if isinstance(trigger, MessageTrigger | SignalTrigger) and isinstance(trigger, kind):
                    try:
                        started_by = x.value(trigger.name, {})
                    except NatsflowError as exc:
                        log.warning("name of start event %s of %s cannot be evaluated: %s", sid, pid, exc)
                        continue
                    if started_by == name:
                        found.append((process, start))
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
        if sub.kind == "signal":
            await self._change(layout.signal_subscriptions_key(sub.tenant, sub.name), lambda subs: [*subs, entry_id])
            return
        await self._change(layout.message_subscriptions_key(sub.tenant, sub.name, sub.key), lambda subs: [*subs, entry_id])
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
