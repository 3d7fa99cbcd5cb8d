"""What each tenant account costs one engine replica: connections, memory, throughput.

.. code-block:: bash

    .venv/bin/python -m bench.tenants                       # 1, 10 and 50 tenant accounts
    .venv/bin/python -m bench.tenants --tenants 1 5 --instances 500
    .venv/bin/python -m bench.tenants --store-dir /mnt/journaled   # the server's files elsewhere

For each tenant count a fresh nats-server in operator mode (full resolver, file storage,
loopback) gets that many tenant accounts, pushed with ``$SYS.REQ.CLAIMS.UPDATE``, and a
credentials directory gets one ``<tenant>.creds`` per account. One process (this one, the
"replica") serves the directory as ``natsflow engine --tenant-credentials-dir`` does
(:class:`~natsflow_engine.accounts.directory.TenantServing` with the command's services: an
engine, an API server and a trigger server per tenant, each on that tenant's connection), plus,
per tenant, a worker for the reference process on the same connection. The replica runs on
uvloop when it is installed, as the command does (``--loop asyncio`` for asyncio's own loop).

Each busy tenant first runs one instance to its end (the warm-up: its definition read and
parsed, its consumers and caches in use), untimed, so the timed part is the steady state and
every tenant count does the same work per timed instance. Then ``--instances`` instances of the
reference process (launch → service task → gateway → end) are launched, spread evenly over the
busy tenants, each tenant's client launching one after the other (each launch awaited); the
completions are counted from each account's history. The default, 5,000, gives each of 50 busy
tenants 100 instances, so that the end of the run, when only the slowest tenants still have
work, is a small part of the timed seconds (with 2,000, 40 per tenant, it is not).

Reported per tenant count: connections on the server, resident memory of the server and of the
replica before and after the tenants came up (and per tenant) and of the replica after the run,
the time to bring the tenants up, CPU of both processes during the timed part, launches per
second (until the last launch was acknowledged) and completed instances per second, and the
load average of the machine before and after the row (the machine is shared: compare rows of
one run, back to back). Each tenant count runs in a fresh process.

Where the server keeps its files matters: nats-server rewrites each busy durable consumer's
state file about ten times a second (a new file renamed over the old one), so 50 busy tenants
(an engine and a worker consumer each) create and delete up to a thousand files a second. On
an ext4 file system without a journal (the machines this project is developed on) a file
creation then checks the free inodes it finds against those deleted in the last seconds, and
the server spends a large share of its CPU on it; ``--store-dir`` puts the server's files on
another file system (``docs/benchmarks.md``, "Many tenant accounts on one replica").
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
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import msgspec
import psutil
from nats.aio.client import Client, RawCredentials
from nats.aio.msg import Msg
from natsflow_engine import layout
from natsflow_engine.accounts import OperatorTrust, TenantAccount, push_account
from natsflow_engine.accounts.connections import ConnectionSettings
from natsflow_engine.accounts.directory import Service, TenantServing
from natsflow_engine.observability import Metrics
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import deploy_definitions
from natsflow_engine.server import EmbeddedNatsServer, operator_config
from natsflow_engine.store import publish_command
from natsflow_engine.worker import Job, Worker

from bench.common import REFERENCE_BPMN, free_port, varz
from natsflow.cli.tenants import engine_services

_history = msgspec.json.Decoder(r.HistoryRecord)


@dataclass
class Result:
    tenants: int
    active: int
    server_connections: int
    setup_seconds: float
    server_rss_mb_before: float
    server_rss_mb_after: float
    replica_rss_mb_before: float
    replica_rss_mb_after: float
    replica_rss_mb_end: float
    """After the instances ran (engine caches filled)."""
    server_mb_per_tenant: float
    replica_mb_per_tenant: float
    server_cpu_seconds: float
    """CPU (user + system) of the nats-server while the instances ran."""
    replica_cpu_seconds: float
    instances: int
    launch_seconds: float
    """Until the last launch was acknowledged by JetStream."""
    seconds: float
    """Until the last instance completed."""
    launches_per_second: float
    instances_per_second: float
    """Completed instances per second."""
    loop: str
    load_before: float
    """The machine's one-minute load average before the tenants came up."""
    load_after: float
    """... and after the run."""


class Tenant:
    """The bench's part for one tenant account once its connection is ready (started after the
    engine's services): the reference process deployed, a worker, completions counted."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nc: Client | None = None
        self.worker: Worker | None = None
        self.version = 0
        self.completed = 0
        self.done = asyncio.Event()
        self.expected = 0

    def on(self, nc: Client) -> Tenant:
        self.nc = nc
        return self

    async def start(self) -> Tenant:
        nc = self.nc
        assert nc is not None
        js = nc.jetstream()
        kv = await js.key_value(layout.BUCKET_WORKFLOWS)
        self.version = (await deploy_definitions(kv, self.name, REFERENCE_BPMN))[0].version
        worker = Worker(tenant=self.name, nc=nc)

        @worker.task("check", concurrency=64)
        async def check(job: Job) -> dict[str, Any]:
            return {"checked": True}

        self.worker = await worker.start()
        await nc.subscribe(f"nf.hist.{self.name}.>", cb=self._on_history)
        return self

    async def _on_history(self, msg: Msg) -> None:
        if _history.decode(msg.data).state == "completed":
            self.completed += 1
            if self.completed >= self.expected:
                self.done.set()

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop(timeout=2.0)


def _rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


async def measure(
    count: int, instances: int, active: int | None = None, store_dir: Path | None = None, loop: str = "asyncio"
) -> Result:
    """``active``: how many of the tenants get the instances (all by default; 1 measures what idle
    tenants cost a busy one). ``store_dir``: where the temporary files (the server's among them)
    go, default the system's temporary directory."""
    load_before = os.getloadavg()[0]
    trust = OperatorTrust.create("bench")
    tmp = Path(tempfile.mkdtemp(prefix="natsflow-tenants-", dir=store_dir))
    http = free_port()
    config = operator_config(
        trust.jwt,
        trust.system_account.public,
        {trust.system_account.public: trust.system_account_jwt},
        resolver_dir=tmp / "resolver",
    )
    server = EmbeddedNatsServer(store_dir=tmp / "js", config=config, extra_args=["-m", str(http)]).start()
    tenants = {f"t{i:03d}": Tenant(f"t{i:03d}") for i in range(count)}
    (tmp / "creds").mkdir()
    services = engine_services(Metrics(), 1)

    def serve(name: str, nc: Client) -> list[Service]:
        return [*services(name, nc), tenants[name].on(nc)]

    serving = TenantServing(tmp / "creds", server.url, serve, settings=ConnectionSettings(callback_timeout=120.0))
    manager = serving.connections
    try:
        assert server.pid is not None
        server_before, replica_before = _rss_mb(server.pid), _rss_mb(os.getpid())
        t0 = time.perf_counter()
        system = Client()
        await system.connect(server.url, user_credentials=RawCredentials(trust.system_user.creds))
        for name in tenants:
            account = TenantAccount(name)
            await push_account(system, account.jwt(trust.signing_key))
            (tmp / "creds" / f"{name}.creds").write_text(account.user("platform").creds)
        await system.close()
        await serving.start()
        clients = [await manager.wait_ready(name, 300.0) for name in tenants]
        setup = time.perf_counter() - t0
        connections = int(varz(http)["connections"])
        server_after, replica_after = _rss_mb(server.pid), _rss_mb(os.getpid())

        busy = list(zip(tenants.values(), clients, strict=True))[: active or count]
        for tenant, nc in busy:  # the warm-up: one instance each, untimed
            tenant.expected = 1
            await _launch(tenant, nc, 0)
        await asyncio.wait_for(asyncio.gather(*(t.done.wait() for t, _ in busy)), 300)
        share = instances // len(busy)
        for tenant, _ in busy:
            tenant.completed, tenant.expected = 0, share
            tenant.done.clear()
        server_proc, replica_proc = psutil.Process(server.pid), psutil.Process(os.getpid())
        server_cpu, replica_cpu = sum(server_proc.cpu_times()[:2]), sum(replica_proc.cpu_times()[:2])
        t1 = time.perf_counter()
        await asyncio.gather(*(_launches(tenant, nc, share) for tenant, nc in busy))
        launched = time.perf_counter() - t1
        await asyncio.wait_for(asyncio.gather(*(t.done.wait() for t, _ in busy)), 600)
        seconds = time.perf_counter() - t1
        replica_end = _rss_mb(os.getpid())
        server_cpu = sum(server_proc.cpu_times()[:2]) - server_cpu
        replica_cpu = sum(replica_proc.cpu_times()[:2]) - replica_cpu
        total = share * len(busy)
        return Result(
            tenants=count,
            active=len(busy),
            server_connections=connections,
            setup_seconds=round(setup, 2),
            server_rss_mb_before=round(server_before, 1),
            server_rss_mb_after=round(server_after, 1),
            replica_rss_mb_before=round(replica_before, 1),
            replica_rss_mb_after=round(replica_after, 1),
            replica_rss_mb_end=round(replica_end, 1),
            server_mb_per_tenant=round((server_after - server_before) / count, 2),
            replica_mb_per_tenant=round((replica_after - replica_before) / count, 2),
            server_cpu_seconds=round(server_cpu, 2),
            replica_cpu_seconds=round(replica_cpu, 2),
            instances=total,
            launch_seconds=round(launched, 2),
            seconds=round(seconds, 2),
            launches_per_second=round(total / launched, 1),
            instances_per_second=round(total / seconds, 1),
            loop=loop,
            load_before=round(load_before, 2),
            load_after=round(os.getloadavg()[0], 2),
        )
    finally:
        await serving.stop()
        server.close()
        shutil.rmtree(tmp, ignore_errors=True)


async def _launches(tenant: Tenant, nc: Client, count: int) -> None:
    """One tenant's client: ``count`` launches, each awaited (tenants do not wait for each other)."""
    for n in range(count):
        await _launch(tenant, nc, n)


async def _launch(tenant: Tenant, nc: Client, n: int) -> None:
    iid = r.new_id()
    await publish_command(
        nc.jetstream(),
        r.Launch(
            id=f"launch.{iid}",
            tenant=tenant.name,
            instance=iid,
            process_id="reference",
            version=tenant.version,
            variables={"amount": n % 200},
        ),
    )


def _run(coro: Coroutine[Any, Any, Result], loop: str) -> Result:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def _default_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tenants", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument(
        "--instances", type=int, default=5000, help="timed instances per run, over all busy tenants"
    )
    parser.add_argument("--active", type=int, help="tenants that get instances (default: all)")
    parser.add_argument("--store-dir", type=Path, help="where the server's files go (default: the temp dir)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default=_default_loop())
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a single run, in this process
    args = parser.parse_args(argv)
    if args.one is not None:
        result = _run(measure(args.one, args.instances, args.active, args.store_dir, args.loop), args.loop)
        print(json.dumps(asdict(result)), flush=True)
        return
    results = []
    for count in args.tenants:  # each count in a fresh process, so memory figures start equal
        out = subprocess.run(
            [sys.executable, "-m", "bench.tenants", "--one", str(count), "--instances", str(args.instances),
             "--loop", args.loop]
            + (["--active", str(args.active)] if args.active else [])
            + (["--store-dir", str(args.store_dir)] if args.store_dir else []),
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout
        result = Result(**json.loads(out.strip().splitlines()[-1]))
        results.append(result)
        print(json.dumps(asdict(result)), flush=True)
    base, base_launches = results[0].instances_per_second, results[0].launches_per_second
    for res in results:
        print(
            f"{res.tenants:>3} tenants ({res.active} busy): {res.server_connections:>3} connections, setup {res.setup_seconds:6.2f}s, "
            f"server +{res.server_mb_per_tenant:.2f} MB/tenant, replica +{res.replica_mb_per_tenant:.2f} MB/tenant, "
            f"CPU server {res.server_cpu_seconds:.2f}s replica {res.replica_cpu_seconds:.2f}s, "
            f"{res.launches_per_second:7.1f} launches/s ({res.launches_per_second / base_launches:.2f} of the first), "
            f"{res.instances_per_second:7.1f} completed/s ({res.instances_per_second / base:.2f}), "
            f"load {res.load_before:.1f}->{res.load_after:.1f} ({res.loop})"
        )


if __name__ == "__main__":
    main()
