"""One measured run per scenario, each on a fresh nats-server (or three-node cluster).

A natsflow scenario starts its bench processes (:mod:`bench.node`), lets the load process run a
burst of instances, marks every process (messages sent, step latencies), then a paced run at a
fraction of the burst's rate, and stops everything. CPU seconds and peak RSS of every process,
nats-server included, come from :class:`~bench.procs.Sampler`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from natsflow_engine import layout
from natsflow_engine.runtime.definitions import deploy_definitions
from natsflow_engine.runtime.setup import LayoutSettings, ensure_layout, open_buckets

from bench.common import ROOT, TENANT, NatsCluster, monitored_server, percentile, varz, wait_jetstream
from bench.procs import NodeProcess, Sampler
from bench.workload import WORKLOADS

MODES = {
    "one-process": [("all", "engine,worker,load")],
    "split": [("engine", "engine"), ("worker", "worker"), ("load", "load")],
    "replicas": [("engine-1", "engine"), ("engine-2", "engine"), ("worker", "worker"), ("load", "load")],
}


@dataclass(frozen=True)
class Scenario:
    workload: str
    mode: str
    cluster: bool = False

    @property
    def name(self) -> str:
        return f"{self.workload} / {self.mode}" + (" / R3 cluster" if self.cluster else "")


async def prepare(url: str, replicas: int) -> None:
    """Streams, buckets and both workloads deployed, before any engine starts."""
    nc = await nats.connect(url.split(","))
    try:
        js = nc.jetstream(timeout=10)
        await ensure_layout(js, LayoutSettings(replicas=replicas), update=True)
        workflows = (await open_buckets(js))[layout.BUCKET_WORKFLOWS]
        for w in WORKLOADS.values():
            await deploy_definitions(workflows, TENANT, w.bpmn)
    finally:
        await nc.close()


def _steps(marks: list[dict[str, Any]]) -> dict[str, float]:
    samples = [x for m in marks for x in m.get("step_samples", [])]
    return {"n": len(samples), "p50": percentile(samples, 50) * 1e3, "p99": percentile(samples, 99) * 1e3}


async def run_scenario(
    sc: Scenario,
    instances: int,
    *,
    paced_seconds: float,
    timeout: float,
    log_dir: Path,
    node_args: tuple[str, ...] = (),
    processes: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """``processes``: (name, roles) of the bench processes, the load process last (default: the
    scenario's mode)."""
    plan = processes or MODES[sc.mode]
    replicas = 3 if sc.cluster else 1
    cluster: NatsCluster | None = None
    http: int | None = None
    if sc.cluster:
        cluster = NatsCluster().start()
        url, servers = cluster.url, {f"nats-{i}": pid for i, pid in enumerate(cluster.pids())}
    else:
        server, http = monitored_server()
        server.start()
        assert server.pid is not None
        url, servers = server.url, {"nats-server": server.pid}
    nodes: list[NodeProcess] = []
    try:
        await wait_jetstream(url, replicas)
        await prepare(url, replicas)
        base = [
            "--url",
            url,
            "--workload",
            sc.workload,
            "--replicas",
            str(replicas),
            "--instances",
            str(instances),
        ]
        base += ["--paced-seconds", str(paced_seconds), "--timeout", str(timeout), *node_args]
        for name, roles in plan:
            nodes.append(await NodeProcess(name, [*base, "--roles", roles], log_dir=log_dir).start())
        load = nodes[-1]
        engines = [n for n, (_, roles) in zip(nodes, plan, strict=True) if "engine" in roles]
        with Sampler({**{n.name: n.pid for n in nodes}, **servers}) as sampler:
            cpu0, busy0, wall0 = sampler.cpu(), Sampler.machine_busy(), time.monotonic()
            v0 = await asyncio.to_thread(varz, http) if http else None
            await load.go()
            burst = await load.expect("burst", timeout + 30)
            cpu1, busy1, wall1 = sampler.cpu(), Sampler.machine_busy(), time.monotonic()
            v1 = await asyncio.to_thread(varz, http) if http else None
            marks = {n.name: await n.mark() for n in nodes}
            paced: dict[str, Any] | None = None
            if paced_seconds > 0 and burst["completed"] == burst["launched"]:
                await load.go()
                paced = await load.expect("paced", timeout + 30)
                paced["step_ms"] = _steps([await n.mark() for n in engines])
        stats = {n.name: await n.stop() for n in nodes}
    finally:
        for n in nodes:
            with contextlib.suppress(Exception):
                await n.stop()
        if cluster is not None:
            cluster.close()
        else:
            server.close()
    done = max(1, burst["completed"])
    sent: dict[str, int] = {}
    for m in marks.values():
        for kind, count in m["sent"].items():
            sent[kind] = sent.get(kind, 0) + count
    requests = sum(v for k, v in sent.items() if k.startswith("req:"))
    out = sum(v for k, v in sent.items() if not k.startswith("req:"))
    result: dict[str, Any] = {
        "name": sc.name,
        "workload": sc.workload,
        "mode": sc.mode,
        "cluster": sc.cluster,
        "launched": burst["launched"],
        "completed": burst["completed"],
        "seconds": burst["seconds"],
        "rate": burst["rate"],
        "s2c_ms": burst["s2c_ms"],
        "step_ms": _steps([marks[n.name] for n in engines]),
        "paced": paced,
        "round_trips": requests / done,
        "msgs_out": out / done,
        "by_kind": {k: v / done for k, v in sorted(sent.items())},
        "cpu_per_1000": {k: (cpu1[k] - cpu0.get(k, 0.0)) / done * 1000 for k in cpu1},
        "rss_mb": {k: v / 2**20 for k, v in sampler.peak.items()},
        "stats": stats,
        # cores used by processes other than this run's (other work on the machine)
        "foreign_cores": max(0.0, (busy1 - busy0) - sum(cpu1[k] - cpu0.get(k, 0.0) for k in cpu1))
        / (wall1 - wall0),
    }
    if v0 and v1:
        result["server_in"] = (v1["in_msgs"] - v0["in_msgs"]) / done
        result["server_out"] = (v1["out_msgs"] - v0["out_msgs"]) / done
    return result


async def _python_json(
    args: list[str], timeout: float, sampled: dict[str, int] | None = None
) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {err.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def run_spiff(instances: int, variant: str, timeout: float) -> dict[str, Any]:
    return await _python_json(["bench.spiff", "--instances", str(instances), "--variant", variant], timeout)


async def run_limit(instances: int, timeout: float, cluster: bool = False) -> dict[str, Any]:
    if cluster:
        with NatsCluster() as c:
            await wait_jetstream(c.url, 3)
            with Sampler({f"nats-{i}": pid for i, pid in enumerate(c.pids())}) as s:
                cpu0 = s.cpu()
                result = await _python_json(
                    ["bench.limit", "--url", c.url, "--instances", str(instances), "--replicas", "3"], timeout
                )
                cpu1 = s.cpu()
    else:
        server, _ = monitored_server()
        with server:
            assert server.pid is not None
            with Sampler({"nats-server": server.pid}) as s:
                cpu0 = s.cpu()
                result = await _python_json(
                    ["bench.limit", "--url", server.url, "--instances", str(instances)], timeout
                )
                cpu1 = s.cpu()
    done = max(1, result["completed"])
    result["server_cpu_per_1000"] = sum(cpu1[k] - cpu0[k] for k in cpu1) / done * 1000
    result["cpu_per_1000"] = result["cpu_s"] / done * 1000
    result["round_trips"] = sum(v for k, v in result["sent"].items() if k.startswith("req:")) / done
    result["msgs_out"] = sum(v for k, v in result["sent"].items() if not k.startswith("req:")) / done
    result["rss_mb"] = result["maxrss_kb"] / 1024
    return result
