"""natsflow benchmarks: ``python bench/run.py --instances 10000`` (see bench/README.md).

Starts its own nats-server (file storage, loopback) per scenario and runs, by default:

* the reference process with engine, worker and load generator in one process, in three
  processes (engine, worker, load), and with two engine replicas;
* the order-fulfilment example in one process, and in three processes (engine, worker, load);
* the reference process on SpiffWorkflow (in memory, and serialized after each step);
* the bare JetStream limit of the reference process;
* with ``--cluster`` also the reference process and the limit on a three-node R3 cluster.

Prints a table, details, a ``goals:`` line (the run's figures against the published goals:
one process at 0.8 of the JetStream limit, order-fulfilment at 1,000 PI/s, the R3 cluster at 0.8
of its own limit), and as its last line exactly one summary line::

    reference: <PI/s> PI/s, p99 <ms> ms, vs SpiffWorkflow <ratio>, vs JetStream limit <ratio>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/run.py``
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench import report
from bench.scenarios import MODES, Scenario, run_limit, run_scenario, run_spiff


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--instances", type=int, default=None, help="instances per burst (default 10000; 150 with --quick)"
    )
    p.add_argument(
        "--quick", action="store_true", help="a small smoke run: one-process reference, Spiff, limit"
    )
    p.add_argument("--cluster", action="store_true", help="also run on a three-node cluster with R3 streams")
    p.add_argument("--modes", default="", help=f"comma-separated subset of {','.join(MODES)}")
    p.add_argument("--no-order", action="store_true", help="skip the order-fulfilment workload")
    p.add_argument(
        "--paced-seconds", type=float, default=None, help="length of the half-peak run (default 8)"
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds one phase may take")
    p.add_argument(
        "--inflight", type=int, default=0, help="engine max in-flight commands (default: EngineSettings')"
    )
    p.add_argument("--json", default="", help="write all results to this file")
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    n = args.instances or (150 if args.quick else 10_000)
    paced_seconds = args.paced_seconds if args.paced_seconds is not None else (1.0 if args.quick else 8.0)
    modes = [m for m in (args.modes.split(",") if args.modes else MODES) if m]
    if args.quick and not args.modes:
        modes = ["one-process"]
    scenarios = [Scenario("reference", m) for m in modes]
    if not args.quick and not args.no_order:  # in one process, and as deployed: engine, workers apart
        scenarios += [Scenario("order", "one-process"), Scenario("order", "split")]
    if args.cluster:
        scenarios.append(Scenario("reference", "one-process", cluster=True))
    log_dir = Path(tempfile.mkdtemp(prefix="natsflow-bench-"))
    results: list[dict[str, Any]] = []
    for sc in scenarios:
        print(f"running {sc.name}, {n} instances ...", file=sys.stderr, flush=True)
        results.append(
            await run_scenario(sc, n, paced_seconds=paced_seconds, timeout=args.timeout, log_dir=log_dir)
        )
    print("running SpiffWorkflow ...", file=sys.stderr, flush=True)
    spiff = [await run_spiff(n, variant, args.timeout) for variant in ("memory", "serialized")]
    print("running the JetStream limit ...", file=sys.stderr, flush=True)
    limits = [await run_limit(n, args.timeout)]
    if args.cluster:
        limits.append({**await run_limit(n, args.timeout, cluster=True), "cluster": True})
    if args.json:
        Path(args.json).write_text(
            json.dumps({"results": results, "spiff": spiff, "limits": limits}, indent=1)
        )
    print(report.table(results, spiff, limits))
    print()
    print(report.details(results))
    incomplete = [r["name"] for r in results if r["completed"] != r["launched"]]
    if incomplete:
        print(f"INCOMPLETE: {', '.join(incomplete)} (process logs in {log_dir})")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    reference = next(r for r in results if r["workload"] == "reference" and not r["cluster"])
    line = report.goals(results, limits)
    if line:
        print(line)
    print(report.summary(reference, spiff[-1], limits[0]))
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
