"""Trigger counters survive a stop that meets a flush under way, and a flush that fails part way."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client
from nats.js.kv import KeyValue
from natsflow_engine.triggers.stats import StatsBook, _Delta, decode_stats, open_stats_bucket


class _HeldBook(StatsBook):
    """A book whose merges wait until the test lets them go (the KV underneath is real)."""

    def __init__(self, kv: KeyValue, interval: float = 1.0) -> None:
        super().__init__(kv, interval)
        self.merging = asyncio.Event()
        self.release = asyncio.Event()
        self.fail_key: str | None = None

    async def _merge(self, key: str, delta: _Delta) -> None:
        if key == self.fail_key:
            raise ConnectionError("refused for the test")
        self.merging.set()
        await self.release.wait()
        await super()._merge(key, delta)


async def _received(nc: Client, key: str) -> int:
    kv = await open_stats_bucket(nc.jetstream())
    return decode_stats((await kv.get(key)).value).received


async def test_stop_waits_for_the_flush_under_way(nc: Client, unique: str) -> None:
    key = f"{unique}.t"
    book = _HeldBook(await open_stats_bucket(nc.jetstream()), interval=0.01)
    book.count(key, "received", 5)
    book.start()
    await asyncio.wait_for(book.merging.wait(), 10)  # the loop's flush holds the five counts
    stopping = asyncio.create_task(book.stop())
    await asyncio.sleep(0)  # stop() has begun while the merge is held
    book.release.set()
    await asyncio.wait_for(stopping, 15)
    assert await _received(nc, key) == 5


async def test_a_failed_merge_keeps_every_delta_not_written(nc: Client, unique: str) -> None:
    first, second = f"{unique}.a", f"{unique}.b"
    book = _HeldBook(await open_stats_bucket(nc.jetstream()))
    book.release.set()
    book.count(first, "received", 2)
    book.count(second, "received", 3)
    book.fail_key = first
    with pytest.raises(ConnectionError):
        await book.flush()
    book.fail_key = None
    await book.flush()
    assert (await _received(nc, first), await _received(nc, second)) == (2, 3)
