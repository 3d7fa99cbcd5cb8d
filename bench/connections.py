"""The same JetStream publishes over one connection or spread over many: CPU per publish.

.. code-block:: bash

    .venv/bin/python -m bench.connections                 # 1 and 50 connections, 1 and 50 streams
    .venv/bin/python -m bench.connections --connections 1 10 50 --publishes 20000

What ``bench.tenants`` loses with many busy tenants, without the engine: a fresh nats-server
(file storage, loopback), ``--concurrency`` tasks in this process each awaiting one JetStream
publish after the other (200-byte payload, ``--publishes`` in all), task ``k`` on connection
``k mod connections`` and stream ``k mod streams``. One engine replica serving 50 tenant
accounts holds 50 connections and each account its own streams, so its messages are spread
this way. Reported per row: publishes per second, and the CPU (user + system) of this process
and of the server per publish; each row in a fresh process, on uvloop when it is installed.

``--state-files DIR ...`` measures instead what nats-server does to keep each busy durable
consumer's state: write a small file and rename it over the old one, about ten times a second
per consumer (its ``consumerFileStore.flushLoop``), here for ``--consumers`` directories in each
``DIR`` for four seconds, with the writes per second reached and the CPU per write.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
import psutil
from nats.aio.client import Client
from natsflow_engine.server import EmbeddedNatsServer


async def measure(connections: int, streams: int, concurrency: int, publishes: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="natsflow-connections-"))
    server = EmbeddedNatsServer(store_dir=tmp / "js").start()
    clients: list[Client] = []
    try:
        clients = [await nats.connect(server.url) for _ in range(connections)]
        for i in range(streams):
            await clients[0].jetstream().add_stream(name=f"S{i}", subjects=[f"s.{i}.>"])
        assert server.pid is not None
        me, srv = psutil.Process(os.getpid()), psutil.Process(server.pid)
        cpu, srv_cpu = sum(me.cpu_times()[:2]), sum(srv.cpu_times()[:2])
        each = publishes // concurrency
        t0 = time.perf_counter()

        async def publisher(k: int) -> None:
            js, subject = clients[k % connections].jetstream(), f"s.{k % streams}.x"
            for _ in range(each):
                await js.publish(subject, b"x" * 200)

        await asyncio.gather(*(publisher(k) for k in range(concurrency)))
        seconds = time.perf_counter() - t0
        total = each * concurrency
        return {
            "connections": connections,
            "streams": streams,
            "concurrency": concurrency,
            "publishes_per_second": round(total / seconds),
            "client_us_per_publish": round(1e6 * (sum(me.cpu_times()[:2]) - cpu) / total, 1),
            "server_us_per_publish": round(1e6 * (sum(srv.cpu_times()[:2]) - srv_cpu) / total, 1),
            "load": round(os.getloadavg()[0], 2),
        }
    finally:
        for nc in clients:
            await nc.close()
        server.close()
        shutil.rmtree(tmp, ignore_errors=True)


def state_files(directory: Path, consumers: int, seconds: float = 4.0) -> str:
    base = Path(tempfile.mkdtemp(prefix="natsflow-state-files-", dir=directory))
    try:
        dirs = [base / f"c{i}" for i in range(consumers)]
        for d in dirs:
            d.mkdir()
        t0, cpu, writes = time.monotonic(), time.process_time(), 0
        while time.monotonic() - t0 < seconds:
            for d in dirs:
                (d / "o.dat.tmp").write_bytes(b"x" * 64)
                (d / "o.dat.tmp").rename(d / "o.dat")
                writes += 1
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t0) % 0.1))  # ten rounds a second at most
        used = time.process_time() - cpu
        return (
            f"{directory}: {consumers} consumers, {writes / seconds:.0f} state writes/s, "
            f"{1e6 * used / writes:.0f} us CPU per write (load {os.getloadavg()[0]:.1f})"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--publishes", type=int, default=20000)
    parser.add_argument("--state-files", type=Path, nargs="+", metavar="DIR")
    parser.add_argument("--consumers", type=int, default=100)
    parser.add_argument("--one", type=int, nargs=2, help=argparse.SUPPRESS)  # connections, streams
    args = parser.parse_args(argv)
    if args.state_files:
        for directory in args.state_files:
            print(state_files(directory, args.consumers), flush=True)
        return
    if args.one is not None:
        coro = measure(args.one[0], args.one[1], args.concurrency, args.publishes)
        try:
            import uvloop
        except ImportError:
            result = asyncio.run(coro)
        else:
            result = uvloop.run(coro)
        print(json.dumps(result), flush=True)
        return
    for streams in args.streams:
        for connections in args.connections:
            out = subprocess.run(
                [sys.executable, "-m", "bench.connections", "--one", str(connections), str(streams),
                 "--concurrency", str(args.concurrency), "--publishes", str(args.publishes)],
                check=True,
                capture_output=True,
                text=True,
                cwd=Path(__file__).resolve().parent.parent,
            ).stdout
            row = json.loads(out.strip().splitlines()[-1])
            print(
                f"{streams:>3} streams, {connections:>3} connections: {row['publishes_per_second']:>6} publishes/s, "
                f"client {row['client_us_per_publish']:5.1f} us and server {row['server_us_per_publish']:5.1f} us "
                f"CPU per publish (load {row['load']:.1f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
