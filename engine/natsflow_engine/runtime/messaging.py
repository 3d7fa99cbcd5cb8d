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
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from natsflow_engine import layout
from natsflow_engine.bpmn.model import Event, MessageTrigger, Process, SignalTrigger
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import DefinitionCache, LatestRecord

__all__ = ["Messaging", "StartIndex"]

log = logging.getLogger(__name__)

_latest_decoder = msgspec.json.Decoder(LatestRecord)


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


def _msub_key(tenant: str, name: str, key: str) -> str:
    return f"msub.{tenant}.{layout.token(name)}.{layout.token(key)}"


def _mbuf_key(tenant: str, name: str, key: str) -> str:
    return f"mbuf.{tenant}.{layout.token(name)}.{layout.token(key)}"


def _ssub_key(tenant: str, name: str) -> str:
    return f"ssub.{tenant}.{layout.token(name)}"


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
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def starts(self, tenant: str, kind: type, name: str) -> list[tuple[Process, Event]]:
        """(process, start event) pairs of the tenant's latest versions started by ``name``."""
        found = []
        for (t, pid), version in list(self.latest.items()):
            if t != tenant:
                continue
            try:
                process = await self.definitions.get(tenant, pid, version)
            except Exception:
                continue
            for sid in process.all_start_events:
                start = process.nodes[sid]
                if isinstance(start, Event) and isinstance(start.trigger, kind) and start.parent == process.id:
                    trigger_name = start.trigger.name.evaluate({})  # type: ignore[union-attr]
                    if trigger_name == name:
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
    ) -> None:
        self.js = js
        self.kv = messages
        self.starts = starts
        self.instances = instances

    # --- subscriptions (engine effects) ---------------------------------------------------------

    async def subscribe(self, sub: r.Subscribe, now: datetime) -> None:
        entry_id = (sub.instance, sub.ei)
        if sub.kind == "signal":
            await self._change(_ssub_key(sub.tenant, sub.name), lambda subs: [*subs, entry_id])
            return
        await self._change(_msub_key(sub.tenant, sub.name, sub.key), lambda subs: [*subs, entry_id])
        try:
            entry = await self.kv.get(_mbuf_key(sub.tenant, sub.name, sub.key))
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
        key = _ssub_key(sub.tenant, sub.name) if sub.kind == "signal" else _msub_key(sub.tenant, sub.name, sub.key)
        await self._change(key, lambda subs: [s for s in subs if tuple(s) != entry_id])

    async def _subscriptions(self, key: str) -> list[tuple[str, int]]:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return []
        return [(str(i), int(e)) for i, e in _subs_decoder.decode(entry.value or b"").subs]

    async def _change(self, key: str, change: Any) -> None:
        for _ in range(50):
            try:
                entry = await self.kv.get(key)
                subs = [tuple(s) for s in _subs_decoder.decode(entry.value or b"").subs]
                revision: int | None = entry.revision
            except KeyNotFoundError:
                subs, revision = [], None
            data = msgspec.json.encode(SubsRecord(subs=change(subs)))
            try:
                if revision is None:
                    await self.kv.create(key, data)
                else:
                    await self.kv.update(key, data, last=revision)
                return
            except KeyWrongLastSequenceError:
                continue
        log.warning("subscription list %s: too many concurrent changes", key)

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
        now = now or datetime.now(UTC)
        message_id = message_id or r.new_id()
        if ttl > timedelta(0):
            await self._buffer(tenant, name, correlation_key, Buffered(
                id=message_id, expires=(now + ttl).isoformat(), variables=variables), now)
        reached = 0
        seen: set[str] = set()
        for instance, ei in await self._subscriptions(_msub_key(tenant, name, correlation_key)):
            if instance in seen:
                continue  # one correlation per instance
            seen.add(instance)
            await self._correlate(tenant, instance, ei, name, correlation_key, message_id, variables)
            reached += 1
        if self.starts is not None:
            for process, start in await self.starts.starts(tenant, MessageTrigger, name):
                iid = layout.idempotent_instance_id(tenant, process.id, f"msg:{message_id}")
                if correlation_key and not await self._claim_key(tenant, process.id, correlation_key, iid):
                    continue  # Zeebe: one active instance per correlation key of a message start
                await self._launch(tenant, process, start, f"msg:{message_id}", variables)
                reached += 1
        return reached

    async def _claim_key(self, tenant: str, process_id: str, key: str, iid: str) -> bool:
        """Claim ``key`` for a new instance unless an active instance of the process holds it."""
        lock = f"mkey.{tenant}.{layout.token(process_id)}.{layout.token(key)}"
        for _ in range(10):
            try:
                entry = await self.kv.get(lock)
            except KeyNotFoundError:
                try:
                    await self.kv.create(lock, iid.encode())
                    return True
                except KeyWrongLastSequenceError:
                    continue
            holder = (entry.value or b"").decode()
            if holder == iid:
                return True  # the same message again: its launch is idempotent
            if self.instances is not None:
                try:
                    state = r.decode_state((await self.instances.get(layout.instance_key(tenant, holder))).value or b"")
                    if state.state == "active":
                        return False
                except KeyNotFoundError:
                    pass  # launched a moment ago and not applied yet: treat as active
                    return False
            try:
                await self.kv.update(lock, iid.encode(), last=entry.revision)
                return True
            except KeyWrongLastSequenceError:
                continue
        return False

    async def broadcast_signal(self, tenant: str, name: str, variables: dict[str, Any], *,
                               signal_id: str | None = None) -> int:
        signal_id = signal_id or r.new_id()
        reached = 0
        for instance, ei in await self._subscriptions(_ssub_key(tenant, name)):
            cmd = r.SignalReceived(id=f"sig.{signal_id}.{instance}.{ei}", tenant=tenant, instance=instance,
                                   ei=ei, name=name, variables=variables)
            await self._send(cmd)
            reached += 1
        if self.starts is not None:
            for process, start in await self.starts.starts(tenant, SignalTrigger, name):
                await self._launch(tenant, process, start, f"sig:{signal_id}", variables)
                reached += 1
        return reached

    # --- helpers --------------------------------------------------------------------------------

    async def _buffer(self, tenant: str, name: str, key: str, message: Buffered, now: datetime) -> None:
        kv_key = _mbuf_key(tenant, name, key)
        for _ in range(20):
            try:
                entry = await self.kv.get(kv_key)
                record = _buffer_decoder.decode(entry.value or b"")
                revision: int | None = entry.revision
            except KeyNotFoundError:
                record, revision = BufferRecord(name=name, key=key), None
            stamp = now.isoformat()
            record.messages = [m for m in record.messages if m.expires > stamp and m.id != message.id]
            record.messages.append(message)
            data = msgspec.json.encode(record)
            try:
                if revision is None:
                    await self.kv.create(kv_key, data)
                else:
                    await self.kv.update(kv_key, data, last=revision)
                return
            except KeyWrongLastSequenceError:
                continue
        log.warning("could not buffer message %s after 20 concurrent updates", message.id)

    async def _correlate(self, tenant: str, instance: str, ei: int, name: str, key: str, message_id: str,
                         variables: dict[str, Any]) -> None:
        await self._send(r.MessageCorrelated(id=f"msg.{message_id}.{instance}", tenant=tenant, instance=instance,
                                             ei=ei, name=name, key=key, message_id=message_id,
                                             variables=variables))

    async def _launch(self, tenant: str, process: Process, start: Event, key: str, variables: dict[str, Any]) -> None:
        iid = layout.idempotent_instance_id(tenant, process.id, key)
        await self._send(r.Launch(id=f"launch.{iid}", tenant=tenant, instance=iid, process_id=process.id,
                                  variables=variables, start_event=start.id))

    async def _send(self, cmd: r.Command) -> None:
        await self.js.publish(layout.command_subject(cmd.tenant, cmd.instance), r.encode(cmd),
                              headers={"Nats-Msg-Id": cmd.id})
