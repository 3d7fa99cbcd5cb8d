"""Paging through the instance index after the engine ran N instances.

    python bench/paging.py --instances 100000
    python bench/paging.py --instances 1000000 --chunk 50000    # the issue's figure (~20 min of load)

Starts a file-storage nats-server and engine processes (``bench.node --roles engine``), and
launches ``--instances`` instances of the ``fast`` workload (start to end: one engine step, one
index entry) through the fastest launch path (a launch command published straight to the
command stream, as the bench's load generator does), in bursts of ``--chunk``, each waited for
until every instance completed. The engine writes the index itself: no index key is written
by the bench. Then the engines stop and, with an API server in this process:

* ``list_entries`` (the library call behind the API) and the API's ``instance-list``: the
  first page (50 entries) without a filter, with ``state=completed`` and with
  ``process_id=fast``; each ``--repeat`` times, median and max ms;
* a walk through the whole listing (pages of 1,000 through the API, each page's cursor to the
  next): every instance must be listed exactly once; the time of the first, middle and last
  page and of the whole walk;
* deep pages: the 50-entry page at the cursor the walk reached half-way and at its last cursor;
* ``natsflow instances --limit 50`` as a subprocess (wall time, so Python's start and imports
  are in it: ~1 s here).

Each figure is printed with the 1-minute load average at the time. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/paging.py``
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import nats
from natsflow_engine.api.client import ApiClient
from natsflow_engine.api.server import ApiServer
from natsflow_engine.index import IndexQuery, list_entries

from bench.common import TENANT, monitored_server
from bench.load import LoadGenerator
from bench.procs import NodeProcess
from bench.scenarios import prepare
from bench.workload import WORKLOADS

PAGE = 50


async def timed_ms(call: Callable[[], Awaitable[Any]], repeat: int) -> dict[str, float]:
    """Median and max wall milliseconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "max_ms": max(times), "load_avg": os.getloadavg()[0]}


async def fill(url: str, instances: int, chunk: int, engines: int, log_dir: Path) -> dict[str, Any]:
    """Run ``instances`` fast instances through engine processes; returns the load figures."""
    nodes: list[NodeProcess] = []
    gen = None
    done = 0
    try:
        for i in range(engines):
            args = ["--url", url, "--workload", "fast", "--roles", "engine"]
            nodes.append(await NodeProcess(f"engine-{i + 1}", args, log_dir=log_dir).start())
        gen = await LoadGenerator.connect(url, WORKLOADS["fast"])
        start = time.perf_counter()
        while done < instances:
            n = min(chunk, instances - done)
            result = await gen.burst(n, timeout=max(120.0, n / 50))
            done += result.completed
            print(
                f"{done} of {instances} instances completed ({result.rate:.0f}/s in this chunk,"
                f" load average {os.getloadavg()[0]:.1f})",
                file=sys.stderr,
                flush=True,
            )
            if result.completed != result.launched:
                raise RuntimeError(
                    f"only {result.completed} of {result.launched} completed; logs in {log_dir}"
                )
    finally:
        if gen is not None:
            await gen.close()
        for node in nodes:
            await node.stop()
    seconds = time.perf_counter() - start
    return {"instances": done, "seconds": round(seconds, 1), "rate": done / seconds}


async def measure(url: str, instances: int, repeat: int) -> dict[str, Any]:
    servers = url.split(",")
    server_nc = await nats.connect(servers)
    client_nc = await nats.connect(servers)
    api_server = await ApiServer(server_nc).start()
    api = ApiClient(client_nc, TENANT, timeout=120.0)
    js = client_nc.jetstream(timeout=120)
    out: dict[str, Any] = {}
    try:
        query = IndexQuery(tenant=TENANT)
        out["library first page"] = await timed_ms(lambda: list_entries(js, query, PAGE), repeat)
        out["API first page"] = await timed_ms(lambda: api.instances(limit=PAGE), repeat)
        out["API first page, state=completed"] = await timed_ms(
            lambda: api.instances(limit=PAGE, state="completed"), repeat
        )
        out["API first page, process=fast"] = await timed_ms(
            lambda: api.instances(limit=PAGE, process_id="fast"), repeat
        )
        out["API first page of 1000"] = await timed_ms(lambda: api.instances(limit=1000), repeat)
        walk = await walk_all(api)
        out["walk"] = {k: v for k, v in walk.items() if k != "cursors"}
        if walk["listed"] != instances or walk["distinct"] != instances:
            out["walk"]["ERROR"] = f"listed {walk['listed']} ({walk['distinct']} distinct), ran {instances}"
        cursors = walk["cursors"]
        if cursors:
            middle, last = cursors[len(cursors) // 2], cursors[-1]
            out["API deep page (half-way cursor)"] = await timed_ms(
                lambda: api.instances(limit=PAGE, cursor=middle), repeat
            )
            out["API deep page (last cursor)"] = await timed_ms(
                lambda: api.instances(limit=PAGE, cursor=last), repeat
            )
        out["CLI natsflow instances --limit 50"] = await cli_ms(url, max(1, repeat // 2))
    finally:
        await api_server.stop()
        for nc in (server_nc, client_nc):
            await nc.close()
    return out


async def walk_all(api: ApiClient) -> dict[str, Any]:
    """Every page of 1,000 through the API; times and the cursors met."""
    seen: set[str] = set()
    listed = 0
    times: list[float] = []
    cursors: list[str] = []
    cursor = None
    begin = time.perf_counter()
    while True:
        start = time.perf_counter()
        page = await api.instances(limit=1000, cursor=cursor)
        times.append((time.perf_counter() - start) * 1e3)
        listed += len(page.instances)
        seen.update(i.id for i in page.instances)
        if page.cursor is None:
            break
        cursor = page.cursor
        cursors.append(cursor)
    return {
        "pages": len(times),
        "listed": listed,
        "distinct": len(seen),
        "seconds": round(time.perf_counter() - begin, 1),
        "first_page_ms": times[0],
        "middle_page_ms": times[len(times) // 2],
        "last_page_ms": times[-1],
        "median_page_ms": statistics.median(times),
        "max_page_ms": max(times),
        "load_avg": os.getloadavg()[0],
        "cursors": cursors,
    }


async def cli_ms(url: str, repeat: int) -> dict[str, float]:
    """Wall ms of ``natsflow instances --limit 50`` as a subprocess (interpreter start included)."""
    cli = Path(sys.executable).parent / "natsflow"
    env = {**os.environ, "NATS_URL": url, "NATSFLOW_TENANT": TENANT}

    async def once() -> None:
        proc = await asyncio.to_thread(
            subprocess.run,
            [str(cli), "instances", "--limit", str(PAGE)],
            env=env,
            capture_output=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"natsflow instances failed: {proc.stderr.decode(errors='replace')[-1000:]}")
        if proc.stdout.count(b"\n") < PAGE:
            raise RuntimeError(
                f"natsflow instances listed fewer than {PAGE} rows:\n{proc.stdout.decode()[:2000]}"
            )

    return await timed_ms(once, repeat)


def report(load: dict[str, Any], figures: dict[str, Any]) -> str:
    lines = [
        f"filled the index: {load['instances']} instances run by the engine in {load['seconds']} s"
        f" ({load['rate']:.0f}/s)",
        "",
        "| what | median ms | max ms | load avg (1 min) |",
        "|---|---|---|---|",
    ]
    for name, f in figures.items():
        if "median_ms" in f:
            lines.append(f"| {name} | {f['median_ms']:.1f} | {f['max_ms']:.1f} | {f['load_avg']:.1f} |")
    w = figures["walk"]
    lines += [
        "",
        f"walk: {w['pages']} pages of 1000 listed {w['listed']} instances ({w['distinct']} distinct) in"
        f" {w['seconds']} s; page ms first {w['first_page_ms']:.1f}, middle {w['middle_page_ms']:.1f},"
        f" last {w['last_page_ms']:.1f}, median {w['median_page_ms']:.1f}, max {w['max_page_ms']:.1f}"
        f" (load average {w['load_avg']:.1f})",
    ]
    if "ERROR" in w:
        lines.append(f"ERROR: {w['ERROR']}")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=100_000)
    p.add_argument("--chunk", type=int, default=20_000, help="instances per burst while filling")
    p.add_argument("--engines", type=int, default=1, help="engine processes while filling")
    p.add_argument("--repeat", type=int, default=5, help="times each query is timed")
    p.add_argument("--json", default="", help="write the figures to this file")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    log_dir = Path(tempfile.mkdtemp(prefix="natsflow-paging-"))
    server, _ = monitored_server()
    with server:
        await prepare(server.url, 1)
        load = await fill(server.url, args.instances, args.chunk, args.engines, log_dir)
        shutil.rmtree(log_dir, ignore_errors=True)  # kept for diagnosis when the fill failed
        figures = await measure(server.url, load["instances"], args.repeat)
    return load, figures


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    load, figures = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps({"load": load, "figures": figures}, indent=1))
    print(report(load, figures))
    return 1 if "ERROR" in figures["walk"] else 0


if __name__ == "__main__":
    sys.exit(main())
