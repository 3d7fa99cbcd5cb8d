"""Soak: a steady load for a long time; throughput, latency and memory every minute.

    python bench/soak.py --minutes 10 --rate 350

Starts a file-storage nats-server, an engine process and a worker process (``bench.node``),
and launches reference instances at ``--rate`` per second from this process, one minute's
worth at a time. Every minute it prints the instances completed, start-to-complete p50/p99,
and the RSS and CPU of the engine, the worker and nats-server; at the end the totals and the
engine's RSS growth between the second minute and the last (the first minute warms caches up).
Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/soak.py``
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.common import monitored_server
from bench.load import LoadGenerator
from bench.procs import NodeProcess, Sampler
from bench.scenarios import prepare
from bench.workload import WORKLOADS


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=350.0, help="instances launched per second")
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="reference")
    p.add_argument("--json", default="", help="write the per-minute figures to this file")
    return p.parse_args(argv)


async def soak(args: argparse.Namespace) -> list[dict[str, Any]]:
    server, _ = monitored_server()
    server.start()
    assert server.pid is not None
    log_dir = Path(tempfile.mkdtemp(prefix="natsflow-soak-"))
    nodes: list[NodeProcess] = []
    gen: LoadGenerator | None = None
    rows: list[dict[str, Any]] = []
    try:
        await prepare(server.url, 1)
        base = ["--url", server.url, "--workload", args.workload]
        nodes.append(await NodeProcess("engine", [*base, "--roles", "engine"], log_dir=log_dir).start())
        nodes.append(await NodeProcess("worker", [*base, "--roles", "worker"], log_dir=log_dir).start())
        gen = await LoadGenerator.connect(server.url, WORKLOADS[args.workload])
        sampler = Sampler({"engine": nodes[0].pid, "worker": nodes[1].pid, "nats-server": server.pid})
        total = 0
        begin = time.monotonic()
        minutes = max(1, round(args.minutes))
        with sampler:
            for minute in range(1, minutes + 1):
                cpu0 = sampler.cpu()
                result = await gen.paced(int(args.rate * 60), args.rate, timeout=120)
                cpu1 = sampler.cpu()
                sampler.sample()
                total += result.completed
                row = {
                    "minute": minute,
                    "elapsed_s": round(time.monotonic() - begin, 1),
                    "completed": result.completed,
                    "launched": result.launched,
                    "rate": round(result.rate, 1),
                    "total": total,
                    "s2c_p50_ms": round(result.s2c.summary_ms()["p50"], 1),
                    "s2c_p99_ms": round(result.s2c.summary_ms()["p99"], 1),
                    "rss_mb": {k: round(v / 2**20, 1) for k, v in sampler.peak.items()},
                    "cpu_s": {k: round(cpu1[k] - cpu0[k], 1) for k in cpu1},
                }
                sampler.peak = dict.fromkeys(sampler.peak, 0)  # peak RSS per minute
                rows.append(row)
                print(json.dumps(row), flush=True)
                if result.completed != result.launched:
                    print(f"INCOMPLETE in minute {minute}: logs in {log_dir}", flush=True)
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


def main() -> int:
    args = parse()
    rows = asyncio.run(soak(args))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if len(rows) >= 2:
        growth = rows[-1]["rss_mb"]["engine"] - rows[1]["rss_mb"]["engine"]
        print(
            f"soak: {rows[-1]['total']} instances in {rows[-1]['elapsed_s']} s; engine RSS"
            f" {rows[1]['rss_mb']['engine']} MB after minute 2, {rows[-1]['rss_mb']['engine']} MB at the end"
            f" ({growth:+.1f} MB); nats-server {rows[-1]['rss_mb']['nats-server']} MB"
        )
    return 0 if rows and all(r["completed"] == r["launched"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
