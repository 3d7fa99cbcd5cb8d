"""Key listing for the API: exact under concurrent writes (no duplicates, nothing missing)."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client
from natsflow_engine.natsutil import list_kv_keys


async def test_listing_is_exact_while_keys_are_written(nc: Client, unique: str) -> None:
    js = nc.jetstream()
    kv = await js.create_key_value(bucket=f"keys_{unique}")
    await asyncio.gather(*(kv.put(f"a.k{i}", b"0") for i in range(500)))
    await kv.put("b.other", b"x")
    await kv.put("a.gone", b"x")
    await kv.delete("a.gone")
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            await kv.put(f"a.k{n % 500}", str(n).encode())
            n += 1

    task = asyncio.create_task(writer())
    try:
        for _ in range(10):
            keys = await list_kv_keys(js, f"keys_{unique}", "a.*")
            assert len(keys) == len(set(keys)) == 500
            assert "a.gone" not in keys
    finally:
        stop.set()
        await task
    assert await list_kv_keys(js, f"keys_{unique}", "zzz.*") == []
    assert sorted(await list_kv_keys(js, f"keys_{unique}", "b.>")) == ["b.other"]
    await js.delete_key_value(f"keys_{unique}")
