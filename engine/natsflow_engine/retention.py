"""The retention sweep: the history of an ended instance goes with its archive.

An ended instance's index entry (its archive, :mod:`natsflow_engine.index`) is written once, when
it ends, so the ended entries of ``nf_index`` are in the order instances ended. Every engine
replica runs a :class:`Sweeper`: every ``IndexSettings.sweep_interval`` seconds it reads the
ended entries from a shared position (the key ``_sweep`` in ``nf_index``; no tenant starts
with ``_``) and, for each whose archive retention has passed, purges the instance's history
subject and then the entry (so an entry gone means its history went). Up to
:attr:`Sweeper.window` entries are being purged at once while the next are read; after each
batch the position moves on with a compare-and-set, past the entries (in stream order) whose
purges all succeeded and no further: a failed purge ends the batch, and its entry is read
again by the next sweep. Replicas sweeping at once purge the same subjects twice, which changes
nothing. It stops at the first entry not due yet, so a process with a longer retention holds
back the sweep of later-ended instances of shorter ones (late, never lost). Entries carry a
TTL of the archive retention plus :data:`GRACE` as a backstop; history is never given a TTL,
so a running instance's history never expires. A stop is seen before each read, and each
purge in flight has the JetStream timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from natsflow_engine import layout
from natsflow_engine.index import ENDED, GRACE, IndexEntry, InstanceIndex
from natsflow_engine.natsutil import cancel_and_wait
from natsflow_engine.publisher import JetStreamPublisher
from natsflow_engine.store import compare_and_set

__all__ = ["GRACE", "POSITION_KEY", "Sweeper"]

log = logging.getLogger(__name__)

POSITION_KEY = "_sweep"
_decoder = msgspec.json.Decoder(IndexEntry)


class _PurgeRequest(msgspec.Struct):
    """JetStream's stream purge request, of one subject."""

    filter: str


_purge_request = msgspec.json.Encoder()


@dataclass(frozen=True)
class _Entry:
    """An ended entry read by the sweep: its stream sequence and, when it is due, what to purge."""

    seq: int
    key: str | None = None
    """Its key in ``nf_index`` (None: nothing to purge, e.g. a purge marker)."""
    history: str = ""
    """The instance's history subject."""


class Sweeper:
    """Purges the history and index entry of ended instances whose archive retention passed."""

    def __init__(
        self,
        js: JetStreamContext,
        index: InstanceIndex,
        clock: Callable[[], datetime],
        *,
        batch: int = 2048,
        window: int = 128,
        publisher: JetStreamPublisher | None = None,
    ) -> None:
        self.js = js
        self.index = index
        self.clock = clock
        self.batch = batch
        """Entries one :meth:`sweep_once` reads at most; the position moves once per batch."""
        self.window = window
        """Purges in flight at most (each one request at a time: the history, then the entry)."""
        self.publisher = publisher
        """The engine's publisher: the purges go through it (a third of the client CPU of
        nats-py's request per purge); without one, through nats-py."""
        self._purge_api = f"{js._prefix}.STREAM.PURGE.{layout.STREAM_HISTORY}"
        self.swept = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> Sweeper:
        self._task = asyncio.create_task(self._run(), name="retention-sweep")
        return self

    async def stop(self, timeout: float = 10.0) -> None:
        """Cancel the sweep and wait up to ``timeout`` for it. A cancel can be lost on the way
        (Python 3.11's ``wait_for`` drops one that meets a reply; nats-py turns one that meets a
        closed connection into ``ConnectionClosedError``), so the loop also checks a flag and
        ends at its next turn."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            task.cancel()
            _, pending = await asyncio.wait([task], timeout=timeout)
            if pending:
                log.warning("retention sweep still finishing a request after %.0f s; it ends after it", timeout)

    async def _run(self) -> None:
        interval = self.index.settings.sweep_interval
        while not self._stopping:
            await asyncio.sleep(interval)  # first after one interval: short-lived engines never sweep
            try:
                while not self._stopping and await self.sweep_once() >= self.batch:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS unavailable a while: try again next round
                log.warning("retention sweep failed: %s", exc)

    async def sweep_once(self) -> int:
        """One batch from the shared position: the number of entries the position moved past
        (``batch`` when the batch was full and every purge succeeded: more may be due)."""
        kv = await self.js.key_value(layout.BUCKET_INDEX)
        try:
            entry = await kv.get(POSITION_KEY)
            position = int(entry.value or b"0")
        except (NotFoundError, ValueError):
            position = 0
        passed, last = await self._sweep(position, self.clock())
        if last > position:

            async def advance(current: bytes | None) -> bytes | None:
                return str(last).encode() if int(current or b"0") < last else None

            await compare_and_set(kv, POSITION_KEY, advance)
        return passed

    async def _sweep(self, position: int, now: datetime) -> tuple[int, int]:
        """Sweep from ``position``: (entries passed, the sequence of the last one). Every entry
        up to that sequence is done; the first failed purge or entry not due ends the batch."""
        stream = f"KV_{layout.BUCKET_INDEX}"
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if position else DeliverPolicy.ALL,
            opt_start_seq=position + 1 if position else None,
            ack_policy=AckPolicy.NONE,
            filter_subjects=[f"$KV.{layout.BUCKET_INDEX}.*.{state}.>" for state in ENDED],
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        info = await self.js.add_consumer(stream, config)
        assert info.name is not None
        flight = _Flight(self, position)
        try:
            budget = min(info.num_pending or 0, self.batch)
            if not budget:
                return 0, position
            reader = await _Reader(self.js, stream, info.name).start()
            try:
                while budget > 0 and not self._stopping and not flight.failed:
                    chunk = min(budget, max(1, self.window // 2))
                    await flight.settle(keep=self.window - chunk)  # reads the next while purging
                    try:
                        msgs = await reader.fetch(chunk, timeout=5.0)
                    except TimeoutError:  # no answer: NATS slow or gone; what is done stays done
                        break
                    except Exception as exc:  # NATS slow or gone: what is done stays done
                        log.warning("retention sweep read failed: %s", exc)
                        break
                    if not msgs:  # the rest were purge markers, expired meanwhile
                        break
                    budget -= len(msgs)
                    entries, complete = self._read(msgs, now)
                    flight.add(entries)
                    if not complete:
                        break
                await flight.settle(keep=0)
            finally:
                with contextlib.suppress(Exception):
                    await reader.stop()
        finally:
            await flight.cancel()
            with contextlib.suppress(Exception):
                await self.js.delete_consumer(stream, info.name)
        return flight.passed, flight.last

    def _read(self, msgs: list[Msg], now: datetime) -> tuple[list[_Entry], bool]:
        """The entries of ``msgs`` up to the first not due yet (then False: the batch ends)."""
        entries: list[_Entry] = []
        prefix = len(f"$KV.{layout.BUCKET_INDEX}.")
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            found = self._due(msg.data) if msg.data else None
            if found is None:
                entries.append(_Entry(seq))
                continue
            due, entry = found
            if due > now:
                return entries, False
            entries.append(_Entry(seq, msg.subject[prefix:], layout.history_subject(entry.tenant, entry.id)))
        return entries, True

    def _due(self, data: bytes) -> tuple[datetime, IndexEntry] | None:
        """When the entry's archive retention ends (None: never, or unreadable: skip it)."""
        try:
            entry = _decoder.decode(data)
            ended = datetime.fromisoformat((entry.ended or "").replace("Z", "+00:00"))
        except (msgspec.DecodeError, ValueError):
            return None
        archive = self.index.settings.retention_for(entry.tenant, entry.process_id).archive
        if archive is None or ended.tzinfo is None:
            return None
        return ended + timedelta(seconds=archive), entry

    async def _purge(self, entry: _Entry) -> None:
        """The entry's history, then the entry (so an entry gone means its history went)."""
        await self._purge_history(entry.history)
        await self._purge_entry(entry.key or "")

    async def _purge_history(self, subject: str) -> None:
        if self.publisher is not None and self.publisher.started:  # the answer's "error" is read alike
            await self.publisher.publish(self._purge_api, _purge_request.encode(_PurgeRequest(subject)))
        else:
            await self.js.purge_stream(layout.STREAM_HISTORY, subject=subject)

    async def _purge_entry(self, key: str) -> None:
        if self.publisher is not None and self.publisher.started:
            marker = self.index.purge_message(key)
            await self.publisher.publish(marker.subject, marker.data, dict(marker.headers))
        else:
            await self.index.purge(key)

class _Reader:
    """Reads a pull consumer in batches through one subscription whose callback collects the
    messages. nats-py's ``fetch`` waits for each message in a turn of the event loop of its own
    (a ``wait_for`` per message), and an engine saturated with steps makes every turn long:
    its sweep then read a few dozen entries a second and fell behind."""

    def __init__(self, js: JetStreamContext, stream: str, consumer: str) -> None:
        self.nc = js._nc
        self.subject = f"{js._prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = self.nc.new_inbox()
        self._sub: Subscription | None = None
        self._msgs: list[Msg] = []
        self._want = 0
        self._done: asyncio.Future[None] | None = None

    async def start(self) -> _Reader:
        self._sub = await self.nc.subscribe(self._inbox, cb=self._on_msg)
        return self

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def fetch(self, batch: int, timeout: float) -> list[Msg]:
        """Up to ``batch`` messages, as many as the consumer has now (none: nothing pending)."""
        self._msgs, self._want = [], batch
        self._done = done = asyncio.get_running_loop().create_future()
        request = json.dumps({"batch": batch, "no_wait": True}).encode()
        await self.nc.publish(self.subject, request, reply=self._inbox)
        async with asyncio.timeout(timeout):
            await done
        return self._msgs

    async def _on_msg(self, msg: Msg) -> None:
        done = self._done
        if done is None or done.done():
            return  # after a timeout: the batch ended without it
        if not msg.data and (msg.headers or {}).get("Status"):  # 404: no more now; 408, 409: ended
            done.set_result(None)
            return
        self._msgs.append(msg)
        if len(self._msgs) >= self._want:
            done.set_result(None)


class _Flight:
    """The purges of one batch in flight, in the order of their entries: :meth:`settle` waits
    for the oldest and moves ``last`` past each entry whose purges succeeded, until the first
    that failed (``failed``; the entries after it are still waited for, never passed)."""

    def __init__(self, sweeper: Sweeper, position: int) -> None:
        self.sweeper = sweeper
        self.passed = 0
        self.last = position
        self.failed = False
        self._queue: deque[tuple[_Entry, asyncio.Task[None] | None]] = deque()
        self._running = 0

    def add(self, entries: list[_Entry]) -> None:
        for entry in entries:
            task = None
            if entry.key is not None:
                task = asyncio.create_task(self.sweeper._purge(entry), name="retention-purge")
                self._running += 1
            self._queue.append((entry, task))

    async def settle(self, keep: int) -> None:
        """Wait until at most ``keep`` purges are in flight (0: all of them)."""
        while self._queue and (self._running > keep or keep == 0):
            entry, task = self._queue[0]
            if task is not None:
                await asyncio.wait([task])
                self._running -= 1
            self._queue.popleft()
            error = None if task is None else (asyncio.CancelledError() if task.cancelled() else task.exception())
            if error is not None and not self.failed:
                self.failed = True
                log.warning("retention sweep: purging %s failed (%r); a later sweep retries", entry.key, error)
            if not self.failed:
                self.passed += 1
                self.last = entry.seq
                self.sweeper.swept += 0 if task is None else 1

    async def cancel(self) -> None:
        """Cancel what is still in flight (a stop, or an error of the batch) and wait for it
        (bounded: :func:`~natsflow_engine.natsutil.cancel_and_wait`)."""
        tasks = [task for _, task in self._queue if task is not None and not task.done()]
        self._queue.clear()
        await asyncio.gather(*(cancel_and_wait(task, timeout=5.0) for task in tasks))
