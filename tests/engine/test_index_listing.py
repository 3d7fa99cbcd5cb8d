"""Listing the instance index: small pages (chained gets), large pages (a consumer) and a
sparse filter that runs past the chained budget all list the same entries in the same order."""

from __future__ import annotations

import asyncio

import msgspec
from nats.aio.client import Client
from natsflow_engine import layout
from natsflow_engine.index import IndexEntry, IndexQuery, list_entries
from natsflow_engine.runtime.setup import ensure_layout

COUNT = 300


async def _write_entries(client: Client, tenant: str) -> list[str]:
    """``COUNT`` entries over two buckets and two days, a few deleted and rewritten; the ids in
    the order of their last change (the listing's order)."""
    js = client.jetstream()
    await ensure_layout(js)
    kv = await js.key_value(layout.BUCKET_INDEX)
    order: list[str] = []
    for n in range(COUNT):
        iid = f"i{n:04d}"
        bucket, day = ("active", "20261204") if n % 3 else ("completed", "20261205")
        entry = IndexEntry(id=iid, tenant=tenant, process_id="p", version=1, state=bucket,
                           attrs={"n": n, "rare": n == COUNT - 2})
        key = layout.index_key(tenant, bucket, "p", 1, day, None, iid)
        await kv.put(key, msgspec.json.encode(entry))
        order.append(iid)
        if n % 50 == 7:  # an entry that moves to the end, and one that goes away
            await kv.put(key, msgspec.json.encode(entry))
            order.remove(iid)
            order.append(iid)
            gone = order.pop(0)
            first = int(gone[1:])
            gb, gd = ("active", "20261204") if first % 3 else ("completed", "20261205")
            await kv.delete(layout.index_key(tenant, gb, "p", 1, gd, None, gone))
    return order


async def _walk(client: Client, query: IndexQuery, limit: int) -> list[str]:
    js = client.jetstream()
    ids: list[str] = []
    cursor = 0
    while True:
        page = await list_entries(js, query, limit, cursor)
        assert len(page.entries) <= limit
        ids += [e.id for e in page.entries]
        if page.cursor is None:
            return ids
        cursor = page.cursor


async def test_small_and_large_pages_list_the_same_entries_in_the_same_order(nc: Client, unique: str) -> None:
    tenant = f"list{unique}"
    order = await _write_entries(nc, tenant)
    everything = IndexQuery(tenant)
    small, large = await asyncio.gather(_walk(nc, everything, 7), _walk(nc, everything, 500))
    assert small == large == order
    two_subjects = IndexQuery(tenant, buckets=("active", "completed"), days=("20261204", "20261205"))
    assert await _walk(nc, two_subjects, 9) == order  # four subjects merged by sequence
    completed = [i for i in order if int(i[1:]) % 3 == 0]
    assert await _walk(nc, IndexQuery(tenant, buckets=("completed",)), 5) == completed


async def test_a_sparse_filter_past_the_chained_budget_still_finds_its_entry(nc: Client, unique: str) -> None:
    tenant = f"sparse{unique}"
    await _write_entries(nc, tenant)
    page = await list_entries(nc.jetstream(), IndexQuery(tenant, attrs={"rare": True}), 5)
    assert [e.id for e in page.entries] == [f"i{COUNT - 2:04d}"]
