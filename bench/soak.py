"""Soak: a steady load for a long time; throughput, latency, memory and storage at intervals.

    python bench/soak.py --minutes 10 --rate 350
    python bench/soak.py --minutes 5 --rate 600 --interval 20 --retention-live 30 \
        --retention-archive 60 --sweep-interval 10          # the retention soak

Starts a file-storage nats-server, an engine process and a worker process (``bench.node``),
and launches instances at ``--rate`` per second from this process, one interval's worth at a
time (``--interval`` seconds, default a minute). After every interval it prints the instances
completed, start-to-complete p50/p99, the RSS and CPU of the engine, the worker and
nats-server, and what nats-server stores: the size of its store directory on disk and, from
its monitoring endpoint (``/jsz``), the messages and bytes of every stream. At the end the
totals and the engine's RSS growth between the second interval and the last (the first warms
caches up). With ``--retention-live`` / ``--retention-archive`` (seconds) the engine keeps ended
instances that long (``natsflow_engine.index.Retention``) and sweeps every
``--sweep-interval`` seconds: storage should stop growing once the retention is reached.
Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/soak.py``
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.common import monitored_server, varz
from bench.load import LoadGenerator
from bench.procs import NodeProcess, Sampler
from bench.scenarios import prepare
from bench.workload import WORKLOADS


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=350.0, help="instances launched per second")
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="reference")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    p.add_argument("--retention-live", type=float, default=None, help="seconds an ended instance stays live")
    p.add_argument("--retention-archive", type=float, default=None, help="seconds it stays archived")
    p.add_argument("--sweep-interval", type=float, default=60.0, help="seconds between retention sweeps")
    p.add_argument("--json", default="", help="write the per-interval figures to this file")
    return p.parse_args(argv)


async def soak(args: argparse.Namespace) -> list[dict[str, Any]]:
    server, http = monitored_server()
    server.start()
    assert server.pid is not None
    log_dir = Path(tempfile.mkdtemp(prefix="natsflow-soak-"))
    nodes: list[NodeProcess] = []
    gen: LoadGenerator | None = None
    rows: list[dict[str, Any]] = []
    try:
        await prepare(server.url, 1)
        base = ["--url", server.url, "--workload", args.workload]
        retention = ["--sweep-interval", str(args.sweep_interval)]
        for flag, value in (
            ("--retention-live", args.retention_live),
            ("--retention-archive", args.retention_archive),
        ):
            retention += [flag, str(value)] if value is not None else []
        engine_args = [*base, "--roles", "engine", *retention]
        nodes.append(await NodeProcess("engine", engine_args, log_dir=log_dir).start())
        nodes.append(await NodeProcess("worker", [*base, "--roles", "worker"], log_dir=log_dir).start())
        gen = await LoadGenerator.connect(server.url, WORKLOADS[args.workload])
        sampler = Sampler({"engine": nodes[0].pid, "worker": nodes[1].pid, "nats-server": server.pid})
        total = 0
        begin = time.monotonic()
        intervals = max(1, round(args.minutes * 60 / args.interval))
        with sampler:
            for interval in range(1, intervals + 1):
                cpu0 = sampler.cpu()
                result = await gen.paced(int(args.rate * args.interval), args.rate, timeout=120)
                cpu1 = sampler.cpu()
                sampler.sample()
                total += result.completed
                row = {
                    "interval": interval,
                    "elapsed_s": round(time.monotonic() - begin, 1),
                    "completed": result.completed,
                    "launched": result.launched,
                    "rate": round(result.rate, 1),
                    "total": total,
                    "s2c_p50_ms": round(result.s2c.summary_ms()["p50"], 1),
                    "s2c_p99_ms": round(result.s2c.summary_ms()["p99"], 1),
                    "rss_mb": {k: round(v / 2**20, 1) for k, v in sampler.peak.items()},
                    "cpu_s": {k: round(cpu1[k] - cpu0[k], 1) for k in cpu1},
                    **await storage(http, server.store_dir),
                    "load_avg": round(os.getloadavg()[0], 1),
                }
                sampler.peak = dict.fromkeys(sampler.peak, 0)  # peak RSS per interval
                rows.append(row)
                print(json.dumps(row), flush=True)
                if result.completed != result.launched:
                    print(f"INCOMPLETE in interval {interval}: logs in {log_dir}", flush=True)
                    break
    finally:
        if gen is not None:
            await gen.close()
        for node in nodes:
            await node.stop()
        server.close()
    if rows and all(r["completed"] == r["launched"] for r in rows):
        shutil.rmtree(log_dir, ignore_errors=True)  # kept for diagnosis otherwise
    return rows


async def storage(http: int, store_dir: Path | None) -> dict[str, Any]:
    """What nats-server stores: its store directory's size on disk (MB) and, from ``/jsz``, the
    messages and MB of every stream."""
    disk = 0
    if store_dir is not None:
        for path in store_dir.rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_file():
                    disk += path.stat().st_blocks * 512
    jsz = await asyncio.to_thread(varz, http, "jsz?streams=true")
    streams = {
        s["name"]: {"msgs": s["state"]["messages"], "mb": round(s["state"]["bytes"] / 2**20, 1)}
        for account in jsz.get("account_details") or []
        for s in account.get("stream_detail") or []
    }
    return {
        "store_mb": round(disk / 2**20, 1),
        "js_mb": round(jsz.get("storage", 0) / 2**20, 1),
        "streams": streams,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    rows = asyncio.run(soak(args))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if len(rows) >= 2:
        growth = rows[-1]["rss_mb"]["engine"] - rows[1]["rss_mb"]["engine"]
        print(
            f"soak: {rows[-1]['total']} instances in {rows[-1]['elapsed_s']} s; engine RSS"
            f" {rows[1]['rss_mb']['engine']} MB after interval 2, {rows[-1]['rss_mb']['engine']} MB at the end"
            f" ({growth:+.1f} MB); nats-server {rows[-1]['rss_mb']['nats-server']} MB RSS,"
            f" stores {rows[-1]['store_mb']} MB on disk"
        )
    return 0 if rows and all(r["completed"] == r["launched"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
