"""Micro-benchmarks behind the optimisation proposals in docs/benchmarks.md.

    python -m bench.micro [--n 20000]

On a fresh file-storage nats-server, with uvloop, each line is the client CPU time per operation
and the rate, for ``n`` operations issued 256 at a time:

* ``js.publish`` (nats-py's request: NUID + urandom token + a future + ``wait_for`` per call),
* ``js.publish_async`` (one future per call, no timer),
* a minimal publisher: ``nc.publish`` with a counter reply token on one wildcard subscription,
  futures resolved in the callback, no per-call timer (what ``natsutil`` could offer),
* KV ``get`` through ``$JS.API.STREAM.MSG.GET`` (buckets as ensure_layout creates them today)
  and through ``$JS.API.DIRECT.GET`` (``allow_direct``),
* ``Msg.ack()`` (one-way) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # pragma: no cover
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, KeyValueConfig, StreamConfig

from bench.common import monitored_server


class CounterPublisher:
    """JetStream publish with a counter reply token and a shared inbox (no per-call timer)."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.prefix = nc.new_inbox()
        self.futures: dict[str, asyncio.Future[Msg]] = {}
        self.ids = itertools.count()

    async def start(self) -> CounterPublisher:
        await self.nc.subscribe(self.prefix + ".*", cb=self._on_reply)
        return self

    async def _on_reply(self, msg: Msg) -> None:
        future = self.futures.pop(msg.subject, None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> Any:
        reply = f"{self.prefix}.{next(self.ids)}"
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self.futures[reply] = future
        await self.nc.publish(subject, data, reply=reply, headers=headers)
        msg = await future  # a real one adds a periodic sweep that fails futures older than a timeout
        return json.loads(msg.data)


async def timed(name: str, n: int, op: Callable[[int], Awaitable[Any]], window: int = 256) -> None:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(0, n, window):
        await asyncio.gather(*(op(i) for i in range(start, min(n, start + window))))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"{name:38s} {cpu / n * 1e6:7.1f} µs client CPU/op {n / wall:9.0f} ops/s", flush=True)


async def main(n: int) -> None:
    server, _ = monitored_server()
    with server:
        nc = await nats.connect(server.url)
        js = nc.jetstream(timeout=10)
        await js.add_stream(StreamConfig(name="M", subjects=["m.>"]))
        data = b"x" * 500
        await timed(
            "js.publish (awaited request)",
            n,
            lambda i: js.publish(f"m.{i}", data, headers={"Nats-Msg-Id": f"a{i}"}),
        )

        async def via_async(i: int) -> Any:
            return await (await js.publish_async(f"m.{i}", data, headers={"Nats-Msg-Id": f"b{i}"}))

        await timed("js.publish_async", n, via_async)
        pub = await CounterPublisher(nc).start()
        await timed(
            "counter-token publisher", n, lambda i: pub.publish(f"m.{i}", data, {"Nats-Msg-Id": f"c{i}"})
        )
        for direct in (False, True):
            kv = await js.create_key_value(
                KeyValueConfig(bucket=f"kv{int(direct)}", history=1, direct=direct)
            )
            for i in range(1000):
                await kv.put(f"k{i}", data)
            name = "kv.get via " + ("DIRECT.GET" if direct else "STREAM.MSG.GET")
            await timed(name, n, lambda i, kv=kv: kv.get(f"k{i % 1000}"))  # type: ignore[misc]
        config = ConsumerConfig(max_ack_pending=n + 1000)
        sub = await js.pull_subscribe("m.>", "acker", stream="M", config=config)
        msgs: list[Msg] = []
        while len(msgs) < n:
            msgs.extend(await sub.fetch(min(1000, n - len(msgs)), timeout=5))
        await timed("msg.ack (one-way)", n, lambda i: msgs[i].ack())
        await sub.unsubscribe()
        await nc.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20_000)
    import uvloop

    uvloop.run(main(p.parse_args().n))
