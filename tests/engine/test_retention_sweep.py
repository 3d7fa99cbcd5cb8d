"""The retention sweep in batches: a backlog of ended instances goes completely, each entry
purged once, and a purge that fails keeps the shared position before its entry.

Each test has a nats-server of its own: the sweep's position is one key for the whole index,
and a backlog is only exact on an index nobody else writes."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from natsflow_engine import layout
from natsflow_engine.index import IndexSettings, InstanceIndex, Retention
from natsflow_engine.publisher import JetStreamPublisher
from natsflow_engine.retention import POSITION_KEY, Sweeper
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.setup import ensure_layout
from natsflow_engine.server import EmbeddedNatsServer

TENANT = "acme"
ENDED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = ENDED + timedelta(hours=1)
"""The sweep's clock: the backlog's archive retention (60 s) passed long ago."""
HISTORY = 2
"""History messages per instance (as the reference process writes)."""


@pytest.fixture
async def publisher(own_nc: Client) -> AsyncIterator[JetStreamPublisher]:
    """The engine's publisher, which the engine's sweeper sends its purges through."""
    publisher = await JetStreamPublisher(own_nc).start()
    try:
        yield publisher
    finally:
        await publisher.stop()


@pytest.fixture
async def own_nc() -> AsyncIterator[Client]:
    with EmbeddedNatsServer() as server:
        client = await nats.connect(server.url)
        try:
            await ensure_layout(client.jetstream())
            yield client
        finally:
            await client.close()


def _state(n: int, state: str, ended: datetime | None) -> r.InstanceState:
    stamp = ENDED.isoformat().replace("+00:00", "Z")
    return r.InstanceState(
        id=f"i{n:06d}",
        tenant=TENANT,
        process_id="review",
        version=1,
        state=state,
        started=stamp,
        ended=None if ended is None else ended.isoformat().replace("+00:00", "Z"),
    )


async def _write(js: JetStreamContext, index: InstanceIndex, states: list[r.InstanceState]) -> dict[str, int]:
    """Index entries and history of ``states`` as the engine writes them; the index key of each
    instance → the stream sequence of its entry."""
    keys: dict[str, int] = {}
    for start in range(0, len(states), 500):
        chunk = states[start : start + 500]
        history = [js.publish(layout.history_subject(s.tenant, s.id), b"{}") for s in chunk for _ in range(HISTORY)]
        await asyncio.gather(*history)
        for s in chunk:  # in order: ended entries are in the order instances ended
            (write,) = index.write(s, index.entry(s), None)
            ack = await js.publish(write.subject, write.data, headers=dict(write.headers))
            keys[s.id] = ack.seq
    return keys


class Observed:
    """What the sweep asked the server (a plain subscriber sees every request)."""

    def __init__(self) -> None:
        self.history: Counter[str] = Counter()
        self.entries: Counter[str] = Counter()

    async def start(self, nc: Client) -> Observed:
        async def on_history(msg: Msg) -> None:
            self.history[json.loads(msg.data)["filter"]] += 1

        async def on_entry(msg: Msg) -> None:
            if (msg.headers or {}).get("KV-Operation") == "PURGE":
                self.entries[msg.subject.rsplit(".", 1)[-1]] += 1

        await nc.subscribe(f"$JS.API.STREAM.PURGE.{layout.STREAM_HISTORY}", cb=on_history)
        await nc.subscribe(f"$KV.{layout.BUCKET_INDEX}.{TENANT}.*.>", cb=on_entry)
        return self


async def _sweep_all(sweeper: Sweeper) -> None:
    """Sweep as a round of the engine does: batches until one is not full."""
    async with asyncio.timeout(120):
        while await sweeper.sweep_once() >= sweeper.batch:
            pass


async def _position(js: JetStreamContext) -> int:
    kv = await js.key_value(layout.BUCKET_INDEX)
    try:
        return int((await kv.get(POSITION_KEY)).value or b"0")
    except KeyNotFoundError:  # no sweep stored one yet
        return 0


async def _history(js: JetStreamContext, instance: str) -> int:
    info = await js.stream_info(layout.STREAM_HISTORY, subjects_filter=layout.history_subject(TENANT, instance))
    return sum((info.state.subjects or {}).values())


async def _has_entry(js: JetStreamContext, instance: str) -> bool:
    kv = await js.key_value(layout.BUCKET_INDEX)
    for bucket in ("completed", "active"):
        try:
            await kv.get(layout.index_key(TENANT, bucket, "review", 1, "20260101", None, instance))
        except KeyNotFoundError:
            continue
        return True
    return False


def _index(js: JetStreamContext) -> InstanceIndex:
    return InstanceIndex(js, IndexSettings(retention=Retention(live=None, archive=60)))


@pytest.mark.parametrize("through", ["publisher", "nats-py"])
async def test_a_backlog_is_swept_completely_once_per_entry_in_batches(
    own_nc: Client, publisher: JetStreamPublisher, through: str
) -> None:
    """3,000 ended instances due, running instances among them and ended ones not due yet
    after them: every due history and entry purged exactly once, over several batches and
    windows; the running and the not-due keep theirs; the position stops before the first
    not due. Purges go through the engine's publisher, or nats-py's requests without one."""
    js = own_nc.jetstream()
    index = _index(js)
    due = [_state(n, "completed", ENDED) for n in range(3000)]
    running = [_state(n, "active", None) for n in range(3000, 3050)]
    later = [_state(n, "completed", NOW) for n in range(3050, 3100)]  # due a minute after NOW
    mixed = [s for pair in zip(due[:50], running, strict=True) for s in pair] + due[50:]
    seqs = await _write(js, index, mixed + later)
    observed = await Observed().start(own_nc)

    sweeper = Sweeper(
        js, index, lambda: NOW, batch=1000, window=64, publisher=publisher if through == "publisher" else None
    )
    await _sweep_all(sweeper)
    await own_nc.flush()  # the requests' copies reach the observer before the flush's answer

    assert sweeper.swept == len(due)
    assert set(observed.history) == {layout.history_subject(TENANT, s.id) for s in due}
    assert set(observed.history.values()) == {1}
    assert set(observed.entries) == {s.id for s in due}
    assert set(observed.entries.values()) == {1}
    assert await _position(js) == max(seqs[s.id] for s in due)
    info = await js.stream_info(layout.STREAM_HISTORY)
    assert info.state.messages == HISTORY * (len(running) + len(later))
    for s in (*running[:3], *later[:3]):
        assert await _history(js, s.id) == HISTORY
        assert await _has_entry(js, s.id)
    for s in (due[0], due[1499], due[-1]):
        assert not await _has_entry(js, s.id)


class FailingOnce(Sweeper):
    """A sweeper whose purge of one instance fails the first time (NATS refusing a request)."""

    def __init__(self, publisher: JetStreamPublisher, index: InstanceIndex, instance: str, phase: str) -> None:
        super().__init__(index.js, index, lambda: NOW, batch=1000, window=64, publisher=publisher)
        self.instance, self.phase, self.failed = instance, phase, 0

    async def _purge_history(self, subject: str) -> None:
        self._maybe_fail("history", subject)
        await super()._purge_history(subject)

    async def _purge_entry(self, key: str) -> None:
        self._maybe_fail("entry", key)
        await super()._purge_entry(key)

    def _maybe_fail(self, phase: str, name: str) -> None:
        if phase == self.phase and name.endswith(f".{self.instance}") and not self.failed:
            self.failed += 1
            raise ConnectionError(f"{phase} purge refused")


@pytest.mark.parametrize("phase", ["history", "entry"])
async def test_a_failed_purge_keeps_the_position_before_its_entry(
    own_nc: Client, publisher: JetStreamPublisher, phase: str
) -> None:
    """The purge of instance 1,500 of 2,000 (in the middle of a window of the second batch)
    fails once: that round ends with the position on the entry before it and the instance's
    entry still in the index; the next round sweeps it and the rest."""
    js = own_nc.jetstream()
    index = _index(js)
    due = [_state(n, "completed", ENDED) for n in range(2000)]
    seqs = await _write(js, index, due)
    victim = due[1500].id
    sweeper = FailingOnce(publisher, index, victim, phase)

    await _sweep_all(sweeper)

    assert sweeper.failed == 1
    assert await _position(js) == seqs[due[1499].id]
    assert await _has_entry(js, victim)
    assert await _history(js, victim) == (HISTORY if phase == "history" else 0)
    assert not await _has_entry(js, due[1499].id)

    await _sweep_all(sweeper)

    assert await _position(js) >= seqs[due[-1].id]  # past the purge markers the sweep wrote, too
    assert not await _has_entry(js, victim)
    assert await _history(js, victim) == 0
    assert (await js.stream_info(layout.STREAM_HISTORY)).state.messages == 0


async def test_replicas_sweeping_the_same_backlog_at_once_purge_it_all(
    own_nc: Client, publisher: JetStreamPublisher
) -> None:
    """Three sweepers (engine replicas) on one backlog at the same time: all of it goes, no
    error, and the position ends after its last entry."""
    js = own_nc.jetstream()
    index = _index(js)
    due = [_state(n, "completed", ENDED) for n in range(1500)]
    seqs = await _write(js, index, due)
    sweepers = [Sweeper(js, index, lambda: NOW, batch=500, window=32, publisher=publisher) for _ in range(3)]

    await asyncio.gather(*(_sweep_all(s) for s in sweepers))

    assert await _position(js) >= seqs[due[-1].id]
    assert (await js.stream_info(layout.STREAM_HISTORY)).state.messages == 0
    assert sum(s.swept for s in sweepers) >= len(due)
    for s in (due[0], due[750], due[-1]):
        assert not await _has_entry(js, s.id)


async def test_a_stop_in_the_middle_of_a_backlog_leaves_no_swept_entry_with_history(
    own_nc: Client, publisher: JetStreamPublisher
) -> None:
    """The engine stops its sweeper while a backlog is being purged: the stop ends (bounded),
    and every entry the position has moved past has lost its history: nothing is skipped."""
    js = own_nc.jetstream()
    settings = IndexSettings(retention=Retention(live=None, archive=60), sweep_interval=0.01)
    index = InstanceIndex(js, settings)
    due = [_state(n, "completed", ENDED) for n in range(3000)]
    seqs = await _write(js, index, due)
    sweeper = Sweeper(js, index, lambda: NOW, batch=500, window=64, publisher=publisher).start()
    task = sweeper._task
    assert task is not None
    async with asyncio.timeout(60):  # a batch done and its position stored
        while await _position(js) == 0:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(sweeper.stop(), 30)

    assert task.done()
    position = await _position(js)
    info = await js.stream_info(layout.STREAM_HISTORY, subjects_filter=f"nf.hist.{TENANT}.>")
    kept = {subject.rsplit(".", 1)[-1] for subject in info.state.subjects or {}}
    assert position >= seqs[due[499].id]  # the first batch at least
    assert all(seqs[s.id] > position for s in due if s.id in kept)
