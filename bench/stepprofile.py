"""cProfile of the one-process reference run: where the engine's CPU goes per instance.

    python -m bench.stepprofile [--instances 5000] [--top 30] [--workload reference]

Starts a file-storage nats-server, then engine, worker and load generator in this process (as
``bench/run.py``'s one-process mode, on uvloop, with natsflow's garbage collector thresholds:
``--gc`` changes them), runs a warm-up burst, and profiles a second burst with cProfile. Prints
the messages sent per instance by kind (counted as in ``run.py``), the CPU seconds per 1,000
instances of this process and of nats-server (cProfile's own overhead included: compare the
shares, not the absolute figures, with ``run.py``), and the functions with the largest own and
cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import sys
from pathlib import Path

if __package__ in (None, ""):  # pragma: no cover - run as a file
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import nats
import psutil
from natsflow_engine import gcpolicy
from natsflow_engine.runtime.engine import Engine
from natsflow_engine.worker import Worker

from bench import common
from bench.common import monitored_server
from bench.load import LoadGenerator
from bench.scenarios import prepare
from bench.workload import WORKLOADS, register


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(
    instances: int,
    workload_name: str,
    top: int,
    save: str = "",
    *,
    profiled: bool = True,
    indexed: bool = True,
) -> str:
    common.install_counters()
    workload = WORKLOADS[workload_name]
    server, _ = monitored_server()
    out = io.StringIO()
    with server:
        assert server.pid is not None
        await prepare(server.url, 1)
        engine_nc, worker_nc = await nats.connect(server.url), await nats.connect(server.url)
        engine = await Engine(engine_nc).start()
        if not indexed:  # what the index costs: the store writes no entries
            engine.store.index = None
        worker = Worker(nc=worker_nc)
        register(worker, workload)
        await worker.start()
        gen = await LoadGenerator.connect(server.url, workload, completion="index" if indexed else "history")
        try:
            warm = await gen.burst(max(200, instances // 10))
            assert warm.completed == warm.launched, "warm-up burst incomplete"
            nats_proc = psutil.Process(server.pid)
            common.reset_counts()
            server0, own0 = sum(nats_proc.cpu_times()[:2]), _cpu()
            profile = cProfile.Profile()
            if profiled:
                profile.enable()
            burst = await gen.burst(instances)
            profile.disable()
            server1, own1 = sum(nats_proc.cpu_times()[:2]), _cpu()
            sent = common.counts()
        finally:
            await gen.close()
            await worker.stop(timeout=2.0)
            await engine.stop(timeout=2.0)
            for nc in (engine_nc, worker_nc):
                await nc.close()
    if save:
        profile.dump_stats(save)
    done = max(1, burst.completed)
    under = " (under cProfile)" if profiled else ""
    print(f"burst: {burst.completed} of {burst.launched} instances at {burst.rate:.0f}/s{under}", file=out)
    print(
        f"CPU s per 1000 instances: this process {(own1 - own0) / done * 1000:.2f},"
        f" nats-server {(server1 - server0) / done * 1000:.2f}",
        file=out,
    )
    requests = sum(v for k, v in sent.items() if k.startswith("req:"))
    kinds = ", ".join(f"{k} {v / done:.2f}" for k, v in sorted(sent.items()))
    print(f"round trips per instance: {requests / done:.2f} ({kinds})", file=out)
    for order in ("tottime", "cumulative") if profiled else ():
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats(order).print_stats(top)
    return out.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=5000)
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="reference")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--save", default="", help="also write the raw profile here (pstats format)")
    p.add_argument("--no-cprofile", action="store_true", help="only the counts and CPU, without cProfile")
    p.add_argument(
        "--no-index", action="store_true", help="the engine writes no index entries (to see their cost)"
    )
    p.add_argument(
        "--gc", default=None, metavar="GEN0,GEN1,GEN2",
        help="the collector's thresholds ('700,10,10': CPython's default; 'off': leave them); "
        "default: natsflow's, as its commands and the bench processes set them",
    )
    args = p.parse_args()
    import uvloop

    try:
        gcpolicy.tune({gcpolicy.ENV: args.gc} if args.gc is not None else {})
    except ValueError as exc:
        p.error(str(exc))

    print(
        uvloop.run(
            run(
                args.instances,
                args.workload,
                args.top,
                args.save,
                profiled=not args.no_cprofile,
                indexed=not args.no_index,
            )
        )
    )


if __name__ == "__main__":
    main()
