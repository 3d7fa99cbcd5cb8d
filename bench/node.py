"""One bench process: any of the roles engine, worker and load, together or alone.

    python -m bench.node --url nats://127.0.0.1:4222 --roles engine
    python -m bench.node --url ... --roles worker --workload order
    python -m bench.node --url ... --roles engine,worker,load --instances 10000

It talks to the orchestrator (``bench/run.py``, the fault tests) by JSON lines on stdout:
``{"event": "ready"}`` once started (message counters are reset then); on SIGUSR1 a ``mark``
line with the messages sent and the step latencies since the last mark; on SIGTERM it stops
gracefully and prints ``stats``. A process with the load role waits for a ``go`` line on stdin
before each phase (a burst, then a paced run) and prints its result after each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # pragma: no cover - run as a file
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from natsflow_engine import gcpolicy
from natsflow_engine.index import IndexSettings, Retention
from natsflow_engine.runtime.engine import Engine, EngineSettings
from natsflow_engine.runtime.setup import JobConsumerSettings, LayoutSettings
from natsflow_engine.worker import Worker

from bench import common
from bench.common import Reservoir
from bench.load import LoadGenerator
from bench.workload import WORKLOADS, JobLog, register

log = logging.getLogger("bench.node")


class TimedEngine(Engine):
    """The engine, with the time to apply each command (wait for the instance's lock, load,
    interpret, KV write, publish effects, ack) recorded: the *step latency*."""

    step_latency = Reservoir()

    async def _handle(self, msg: Msg) -> None:
        start = time.perf_counter()
        await super()._handle(msg)
        TimedEngine.step_latency.add(time.perf_counter() - start)


def _worker_layout_shim(settings: LayoutSettings) -> None:
    """Worker.start() calls ensure_layout() with default settings (R1), which fails on buckets
    created R3 (err 10058, reported with tests/faults/test_faults_cluster.py); until the
    engine is fixed the bench's workers pass the deployment's settings."""
    import functools

    from natsflow_engine import worker as worker_module
    from natsflow_engine.runtime.setup import ensure_layout

    worker_module.ensure_layout = functools.partial(ensure_layout, settings=settings)  # type: ignore[assignment]


def engine_settings(args: argparse.Namespace) -> EngineSettings:
    """The engine's settings; ``--retention-live``/``--retention-archive`` (seconds) set the
    default retention of ended instances (the soak), ``--sweep-interval`` how often it is applied."""
    if args.retention_live is None and args.retention_archive is None:
        return EngineSettings(max_inflight=args.inflight)
    archive = args.retention_archive if args.retention_archive is not None else Retention().archive
    index = IndexSettings(
        retention=Retention(live=args.retention_live, archive=archive), sweep_interval=args.sweep_interval
    )
    return EngineSettings(max_inflight=args.inflight, index=index)


def emit(event: str, **data: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


async def connect(url: str, name: str) -> Client:
    return await nats.connect(
        url.split(","),
        name=name,
        reconnect_time_wait=0.2,
        max_reconnect_attempts=600,
        connect_timeout=2,
    )


def mark() -> None:
    samples = TimedEngine.step_latency.samples
    stride = max(1, len(samples) // 20_000)
    emit("mark", sent=common.counts(), step_samples=[round(x, 6) for x in samples[::stride]])
    common.reset_counts()
    TimedEngine.step_latency = Reservoir()


async def run(args: argparse.Namespace) -> None:
    common.install_counters()
    roles = set(args.roles.split(","))
    workload = WORKLOADS[args.workload]
    layout_settings = LayoutSettings(replicas=args.replicas, command_ack_wait=args.ack_wait)
    engines: list[Engine] = []
    worker: Worker | None = None
    clients: list[Client] = []
    job_log = JobLog(Path(args.job_log)) if args.job_log else None
    gen: LoadGenerator | None = None
    try:
        if "engine" in roles:
            nc = await connect(args.url, "bench-engine")
            clients.append(nc)
            engines.append(
                await TimedEngine(nc, engine_settings(args), layout_settings=layout_settings).start()
            )
        if "worker" in roles:
            if args.replicas != 1:
                _worker_layout_shim(layout_settings)
            nc = await connect(args.url, "bench-worker")
            clients.append(nc)
            worker = Worker(nc=nc)
            consumer = JobConsumerSettings(
                concurrency=args.concurrency, timeout=args.job_timeout, retries=args.job_retries
            )
            register(
                worker,
                workload,
                concurrency=args.concurrency,
                consumer=consumer,
                delay=args.job_delay,
                job_log=job_log,
            )
            await worker.start()
        if "load" in roles:
            gen = await LoadGenerator.connect(args.url, workload)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, mark)
        common.reset_counts()
        emit("ready", roles=sorted(roles))
        if gen is not None:
            await phases(gen, args, stop)
        await stop.wait()
    finally:
        if gen is not None:
            await gen.close()
        if worker is not None:
            await worker.stop(timeout=2.0)
        for engine in engines:
            await engine.stop(timeout=2.0)
        for nc in clients:
            with contextlib.suppress(Exception):
                await nc.close()
        if job_log is not None:
            job_log.close()
    emit(
        "stats",
        steps=sum(e.steps for e in engines),
        conflicts=sum(e.conflicts for e in engines),
        jobs_completed=worker.completed if worker else 0,
        jobs_failed=worker.failed if worker else 0,
        maxrss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    )


async def wait_go(stop: asyncio.Event) -> bool:
    line = await asyncio.to_thread(sys.stdin.readline)
    return line.strip() == "go" and not stop.is_set()


async def phases(gen: LoadGenerator, args: argparse.Namespace, stop: asyncio.Event) -> None:
    if not await wait_go(stop):
        return
    burst = await gen.burst(args.instances, timeout=args.timeout)
    emit("burst", **burst.as_dict())
    if args.paced_seconds <= 0 or not await wait_go(stop):
        return
    rate = args.paced_rate or max(1.0, burst.rate * args.paced_fraction)
    count = max(10, int(rate * args.paced_seconds))
    paced = await gen.paced(count, rate, timeout=args.timeout)
    emit("paced", offered=rate, **paced.as_dict())


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="NATS URL(s), comma-separated")
    p.add_argument("--roles", default="engine,worker,load")
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="reference")
    p.add_argument("--replicas", type=int, default=1, help="stream/bucket replicas (3 on a cluster)")
    p.add_argument("--ack-wait", type=float, default=30.0, help="engine command ack wait, seconds")
    p.add_argument(
        "--inflight", type=int, default=EngineSettings().max_inflight, help="engine max in-flight commands"
    )
    p.add_argument("--retention-live", type=float, default=None, help="seconds an ended instance stays live")
    p.add_argument("--retention-archive", type=float, default=None, help="seconds it stays archived")
    p.add_argument("--sweep-interval", type=float, default=60.0, help="seconds between retention sweeps")
    p.add_argument("--concurrency", type=int, default=128, help="jobs in flight per task type")
    p.add_argument("--job-timeout", type=float, default=300.0, help="job ack wait, seconds")
    p.add_argument("--job-retries", type=int, default=3)
    p.add_argument("--job-delay", type=float, default=0.0, help="seconds each job handler sleeps")
    p.add_argument("--job-log", default="", help="append '<start|done> <job key> <attempt>' lines here")
    p.add_argument("--instances", type=int, default=10_000)
    p.add_argument("--paced-fraction", type=float, default=0.5)
    p.add_argument("--paced-rate", type=float, default=0.0)
    p.add_argument("--paced-seconds", type=float, default=6.0)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds a phase may take")
    p.add_argument(
        "--profile-dir", default="", help="run under cProfile and write <roles>-<pid>.prof here when stopped"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    gcpolicy.tune()  # as natsflow's own commands do
    profile = cProfile.Profile() if args.profile_dir else None
    if profile is not None:
        profile.enable()
    try:
        import uvloop

        uvloop.run(run(args))
    except ImportError:  # pragma: no cover
        asyncio.run(run(args))
    finally:
        if profile is not None:
            profile.disable()
            profile.dump_stats(Path(args.profile_dir) / f"{args.roles.replace(',', '-')}-{os.getpid()}.prof")


if __name__ == "__main__":
    main()
