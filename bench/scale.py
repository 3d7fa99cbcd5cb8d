"""Scale-out: 1, 2 and 3 engine replicas as separate processes, on one nats-server and on a
three-node R3 cluster.

    python bench/scale.py --instances 5000
    python bench/scale.py --workloads order --replicas 1,2,3 --topologies single,cluster

For every topology, workload and replica count: a fresh server (or cluster), the engine
processes (``bench.node --roles engine``), one worker process and one load process, and a burst
of instances (:func:`bench.scenarios.run_scenario`, no paced run). Reported per run:

* PI/s (instances completed / seconds from the first launch to the last completion);
* scaling efficiency: PI/s with k replicas / (k x PI/s with one replica, same topology and
  workload);
* cores used: CPU seconds of every process of the run (engines, worker, load, nats-servers)
  over the burst's seconds, next to the machine's core count, and PI/s per core used;
* round trips and the engines' revision conflicts (a command applied on a stale record, then
  reloaded) per instance;
* cores other processes on the machine used meanwhile, and the 1-minute load average.

Workloads: ``reference``, ``order`` (examples/order-fulfilment) and ``parallel10`` (ten parallel
service tasks, a 50 KB variable per instance; ``--parallel-instances`` of them, it is slow).
The last line is one summary line per topology and workload::

    scale <topology> / <workload>: <PI/s> / <PI/s> / <PI/s> PI/s with 1 / 2 / 3 engines, efficiency <e2> / <e3>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/scale.py``
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.scenarios import Scenario, run_scenario
from bench.workload import WORKLOADS

TOPOLOGIES = ("single", "cluster")


def plan(engines: int) -> list[tuple[str, str]]:
    """The bench processes of a run with ``engines`` engine replicas (the load process last)."""
    return [
        *((f"engine-{i}", "engine") for i in range(1, engines + 1)),
        ("worker", "worker"),
        ("load", "load"),
    ]


def figures(result: dict[str, Any], engines: int, topology: str) -> dict[str, Any]:
    """The scale-out figures of one run (see the module docstring)."""
    done = max(1, result["completed"])
    cpu = result["cpu_per_1000"]
    cpu_s = sum(cpu.values()) * done / 1000
    seconds = max(result["seconds"], 1e-9)
    cores = cpu_s / seconds
    return {
        "topology": topology,
        "workload": result["workload"],
        "engines": engines,
        "launched": result["launched"],
        "completed": result["completed"],
        "seconds": round(seconds, 2),
        "rate": result["rate"],
        "cores_used": cores,
        "rate_per_core": result["rate"] / cores if cores else float("nan"),
        "engine_cpu_per_1000": sum(v for k, v in cpu.items() if k.startswith("engine")),
        "server_cpu_per_1000": sum(v for k, v in cpu.items() if k.startswith("nats")),
        "other_cpu_per_1000": sum(v for k, v in cpu.items() if not k.startswith(("engine", "nats"))),
        "round_trips": result["round_trips"],
        "conflicts_per_pi": sum(
            v.get("conflicts", 0) for k, v in result["stats"].items() if k.startswith("engine")
        )
        / done,
        "foreign_cores": result.get("foreign_cores", 0.0),
        "load_avg": os.getloadavg()[0],
    }


def efficiency(rows: list[dict[str, Any]]) -> None:
    """Add ``efficiency`` to every row: PI/s / (engines x PI/s of the one-engine run)."""
    for row in rows:
        base = next(
            (
                r
                for r in rows
                if r["engines"] == 1 and r["topology"] == row["topology"] and r["workload"] == row["workload"]
            ),
            None,
        )
        ok = base is not None and base["rate"] > 0
        row["efficiency"] = row["rate"] / (row["engines"] * base["rate"]) if ok and base else float("nan")


def table(rows: list[dict[str, Any]]) -> str:
    cores = os.cpu_count()
    lines = [
        "| topology | workload | engines | PI/s | scaling efficiency | cores used (of "
        f"{cores}) | PI/s per core | CPU s / 1000 PI (engines; worker+load; nats-server) "
        "| round trips / PI | revision conflicts / PI | other processes, cores | load avg (1 min) |",
        "|" + "---|" * 12,
    ]
    for r in rows:
        partial = "" if r["completed"] == r["launched"] else f" (of {r['launched']}: INCOMPLETE)"
        lines.append(
            f"| {r['topology']} | {r['workload']} | {r['engines']} | {r['rate']:.0f}{partial} "
            f"| {r['efficiency']:.2f} | {r['cores_used']:.2f} | {r['rate_per_core']:.0f} "
            f"| {r['engine_cpu_per_1000']:.2f}; {r['other_cpu_per_1000']:.2f}; {r['server_cpu_per_1000']:.2f} "
            f"| {r['round_trips']:.2f} | {r['conflicts_per_pi']:.2f} | {r['foreign_cores']:.2f} | {r['load_avg']:.1f} |"
        )
    return "\n".join(lines)


def summaries(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["topology"], r["workload"]), []).append(r)
    for (topology, workload), group in groups.items():
        group.sort(key=lambda r: r["engines"])
        rates = " / ".join(f"{r['rate']:.0f}" for r in group)
        counts = " / ".join(str(r["engines"]) for r in group)
        eff = " / ".join(f"{r['efficiency']:.2f}" for r in group if r["engines"] > 1)
        out.append(
            f"scale {topology} / {workload}: {rates} PI/s with {counts} engines, efficiency {eff or '-'}"
        )
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=5000, help="instances per burst (reference, order)")
    p.add_argument(
        "--parallel-instances", type=int, default=500, help="instances per burst of the parallel10 workload"
    )
    p.add_argument("--workloads", default="reference,order,parallel10", help="comma-separated")
    p.add_argument("--replicas", default="1,2,3", help="engine replica counts, comma-separated")
    p.add_argument("--topologies", default=",".join(TOPOLOGIES), help="single, cluster or both")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds one burst may take")
    p.add_argument("--json", default="", help="write the rows to this file")
    args = p.parse_args(argv)
    for name in args.workloads.split(","):
        if name not in WORKLOADS:
            p.error(f"unknown workload {name!r}; known: {', '.join(sorted(WORKLOADS))}")
    for name in args.topologies.split(","):
        if name not in TOPOLOGIES:
            p.error(f"unknown topology {name!r}; known: {', '.join(TOPOLOGIES)}")
    return args


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    log_dir = Path(tempfile.mkdtemp(prefix="natsflow-scale-"))
    rows: list[dict[str, Any]] = []
    replicas = [int(x) for x in args.replicas.split(",")]
    for topology in args.topologies.split(","):
        for workload in args.workloads.split(","):
            n = args.parallel_instances if workload == "parallel10" else args.instances
            for engines in replicas:
                sc = Scenario(workload, f"{engines} engines", cluster=topology == "cluster")
                print(f"running {sc.name}, {n} instances ...", file=sys.stderr, flush=True)
                result = await run_scenario(
                    sc, n, paced_seconds=0, timeout=args.timeout, log_dir=log_dir, processes=plan(engines)
                )
                rows.append(figures(result, engines, topology))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    efficiency(rows)
    if all(r["completed"] == r["launched"] for r in rows):
        shutil.rmtree(log_dir, ignore_errors=True)
    else:
        print(f"INCOMPLETE runs: process logs in {log_dir}")
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    rows = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(table(rows))
    print()
    for line in summaries(rows):
        print(line)
    return 0 if all(r["completed"] == r["launched"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
