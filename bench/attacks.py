"""Isolation under load: a steady stream of normal instances, with and without hostile ones.

    python -m bench.attacks --rate 20 --seconds 20 --attack-every 2

One process runs a nats-server (file storage), one engine and one worker. Phase 1 launches
the normal process (start, service task, end) at ``--rate`` per second for ``--seconds`` and
measures each instance's start-to-complete time (launch publish to its ``completed`` history
record). Phase 2 does the same while every ``--attack-every`` seconds one of each attack is
started:

* ``too-large``: a launch whose record would be over 1 MB (a script copies 600 KB of variables)
* ``endless-loop``: a gateway loop before the first wait state (stopped at the activation limit)
* ``recursion``: A calls B calls A (stopped at the call depth, 100 instances per attack)
* ``feel-range``: a script ``for x in 1..100000000 return x`` (stopped by the FEEL budget)
* ``regex``: ``matches(s, "(a+)+$")`` on 5,000 characters (linear-time regular expressions)
* ``poison``: commands for instances that do not exist and commands that do not decode

Prints p50/p99 of the normal stream in both phases, their ratio, the peak RSS of the process
(engine, worker and load generator; the nats-server is not counted) and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # pragma: no cover
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import nats
import psutil
from natsflow_engine import layout
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import deploy_definitions
from natsflow_engine.runtime.engine import Engine
from natsflow_engine.runtime.setup import ensure_layout, open_buckets
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.store import publish_command
from natsflow_engine.worker import Job, Worker

from bench.common import percentile

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions '
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
    'id="d" targetNamespace="t">'
)


def _process(pid: str, nodes: str, flows: list[tuple[str, str]]) -> str:
    seq = "".join(f'<bpmn:sequenceFlow id="f{n}" sourceRef="{a}" targetRef="{b}" />' for n, (a, b) in enumerate(flows))
    return f'{HEAD}<bpmn:process id="{pid}" isExecutable="true">{nodes}{seq}</bpmn:process></bpmn:definitions>'


def _script(sid: str, expression: str, result: str = "r") -> str:
    expression = expression.replace('"', "&quot;")
    return (
        f'<bpmn:scriptTask id="{sid}"><bpmn:extensionElements><zeebe:script expression="{expression}" '
        f'resultVariable="{result}" /></bpmn:extensionElements></bpmn:scriptTask>'
    )


def _call(cid: str, target: str) -> str:
    return (
        f'<bpmn:callActivity id="{cid}"><bpmn:extensionElements><zeebe:calledElement processId="{target}" />'
        "</bpmn:extensionElements></bpmn:callActivity>"
    )


START, END = '<bpmn:startEvent id="s" />', '<bpmn:endEvent id="e" />'
WAIT = '<bpmn:userTask id="ut" />'
MODELS = {
    "normal": _process(
        "normal",
        START + '<bpmn:serviceTask id="w"><bpmn:extensionElements><zeebe:taskDefinition type="work" />'
        "</bpmn:extensionElements></bpmn:serviceTask>" + END,
        [("s", "w"), ("w", "e")],
    ),
    "too-large": _process("too-large", START + _script("copy", "=x", "y") + WAIT, [("s", "copy"), ("copy", "ut")]),
    "endless-loop": _process(
        "endless-loop", START + '<bpmn:exclusiveGateway id="gw" /><bpmn:task id="t" />',
        [("s", "gw"), ("gw", "t"), ("t", "gw")],
    ),
    "rec-a": _process("rec-a", START + _call("c", "rec-b") + END, [("s", "c"), ("c", "e")]),
    "rec-b": _process("rec-b", START + _call("c", "rec-a") + END, [("s", "c"), ("c", "e")]),
    "feel-range": _process(
        "feel-range", START + _script("calc", "=for x in 1..100000000 return x") + END, [("s", "calc"), ("calc", "e")]
    ),
    "regex": _process(
        "regex", START + _script("calc", '=matches(s, "(a+)+$")') + END, [("s", "calc"), ("calc", "e")]
    ),
}
ATTACKS: dict[str, tuple[str, dict[str, Any]]] = {
    "too-large": ("too-large", {"x": "a" * 600_000}),
    "endless-loop": ("endless-loop", {}),
    "recursion": ("rec-a", {}),
    "feel-range": ("feel-range", {}),
    "regex": ("regex", {"s": "a" * 5_000 + "!"}),
}


class Load:
    def __init__(self, js: Any) -> None:
        self.js = js
        self.sent: dict[str, float] = {}
        self.done: dict[str, float] = {}

    async def on_history(self, msg: Any) -> None:
        iid = msg.subject.rsplit(".", 1)[1]
        if iid in self.sent and iid not in self.done and b'"state":"completed"' in msg.data:
            self.done[iid] = time.perf_counter()

    async def launch(self, process_id: str, variables: dict[str, Any], *, track: bool) -> None:
        iid = r.new_id()
        cmd = r.Launch(id=f"launch.{iid}", tenant=layout.DEFAULT_TENANT, instance=iid, process_id=process_id,
                       version=1, variables=variables)
        if track:
            self.sent[iid] = time.perf_counter()
        await publish_command(self.js, cmd)

    def latencies(self) -> list[float]:
        return [self.done[i] - t for i, t in self.sent.items() if i in self.done]


async def _poison(js: Any) -> None:
    ghost = r.Cancel(id=f"cancel.{r.new_id()}", tenant=layout.DEFAULT_TENANT, instance=r.new_id())
    await publish_command(js, ghost)
    await js.publish(layout.command_subject(layout.DEFAULT_TENANT, r.new_id()), b"{not json")


async def _phase(js: Any, nc: Any, args: argparse.Namespace, *, attacks: bool, rss: list[int]) -> dict[str, Any]:
    load = Load(js)
    sub = await nc.subscribe(layout.tenant_history_subjects(layout.DEFAULT_TENANT), cb=load.on_history)
    proc = psutil.Process()
    started = time.perf_counter()
    interval, n, next_attack, attacked = 1.0 / args.rate, 0, started, 0
    while (now := time.perf_counter()) - started < args.seconds:
        if attacks and now >= next_attack:
            for name in args.attacks:
                if name == "poison":
                    await _poison(js)
                else:
                    process_id, variables = ATTACKS[name]
                    await load.launch(process_id, variables, track=False)
            attacked += 1
            next_attack += args.attack_every
        await load.launch("normal", {"n": n}, track=True)
        n += 1
        rss.append(proc.memory_info().rss)
        await asyncio.sleep(max(0.0, started + n * interval - time.perf_counter()))
    deadline = time.perf_counter() + 120
    while len(load.done) < len(load.sent) and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
        rss.append(proc.memory_info().rss)
    await sub.unsubscribe()
    lat = load.latencies()
    return {
        "launched": len(load.sent), "completed": len(lat), "attack_rounds": attacked,
        "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
    }


async def main(args: argparse.Namespace) -> None:
    server = EmbeddedNatsServer().start()
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_layout(js)
        workflows = (await open_buckets(js))[layout.BUCKET_WORKFLOWS]
        for source in MODELS.values():
            await deploy_definitions(workflows, layout.DEFAULT_TENANT, source)
        engine = await Engine(nc).start()
        worker = Worker(nc=nc)

        @worker.task("work", concurrency=64)
        async def work(job: Job) -> dict[str, Any]:
            return {"ok": True}

        await worker.start()
        rss: list[int] = []
        await _phase(js, nc, argparse.Namespace(**{**vars(args), "seconds": 3.0}), attacks=False, rss=[])  # warm-up
        quiet = await _phase(js, nc, args, attacks=False, rss=rss)
        quiet_rss = max(rss)
        rss.clear()
        hostile = await _phase(js, nc, args, attacks=True, rss=rss)
        await worker.stop(timeout=2.0)
        await engine.stop(timeout=5.0)
        await nc.close()
    finally:
        server.close()
    result = {
        "rate": args.rate, "seconds": args.seconds, "attack_every": args.attack_every, "attacks": args.attacks,
        "without_attacks": quiet, "with_attacks": hostile,
        "p99_ratio": hostile["p99_ms"] / quiet["p99_ms"] if quiet["p99_ms"] else None,
        "rss_mb_without": quiet_rss / 2**20, "rss_mb_with": max(rss) / 2**20,
        "loadavg": os.getloadavg(), "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    print(
        f"normal stream p50/p99: {quiet['p50_ms']:.0f}/{quiet['p99_ms']:.0f} ms without attacks, "
        f"{hostile['p50_ms']:.0f}/{hostile['p99_ms']:.0f} ms with ({hostile['attack_rounds']} rounds of "
        f"{len(args.attacks)} attacks: {','.join(args.attacks)}); p99 ratio {result['p99_ratio']:.2f}; RSS {result['rss_mb_without']:.0f} -> "
        f"{result['rss_mb_with']:.0f} MB; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=20.0, help="normal instances per second")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    p.add_argument("--attack-every", type=float, default=2.0, help="seconds between rounds of attacks")
    p.add_argument("--only", default="", help=f"comma-separated subset of {','.join([*ATTACKS, 'poison'])}")
    args = p.parse_args(argv)
    args.attacks = [a for a in args.only.split(",") if a] or [*ATTACKS, "poison"]
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
