"""The retention sweep alone: how fast it purges a backlog of ended instances, and its CPU.

    python bench/sweep.py --instances 5000 --runs 3

A fresh file-storage nats-server per run; the backlog is written as the engine writes it (an
ended index entry per instance through ``InstanceIndex``, two history messages each, as the
reference process leaves), then one :class:`~natsflow_engine.retention.Sweeper` with a clock
past the archive retention sweeps it in rounds (batches until one is not full), the way an
engine's sweep does. Reports instances swept per second, the CPU seconds of this process and of
nats-server during the sweep, per 1,000 instances, and the load average. ``--through nats-py``
sends the purges as nats-py requests instead of through the engine's publisher (the default,
as the engine does). Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/sweep.py``
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import nats
from natsflow_engine import layout
from natsflow_engine.index import IndexSettings, InstanceIndex, Retention
from natsflow_engine.publisher import JetStreamPublisher
from natsflow_engine.retention import Sweeper
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.setup import ensure_layout
from natsflow_engine.server import EmbeddedNatsServer

ENDED = "2026-01-01T00:00:00Z"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=5000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--window", type=int, default=0, help="purges in flight (0: the Sweeper's default)")
    p.add_argument("--through", choices=["publisher", "nats-py"], default="publisher")
    return p.parse_args(argv)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_run(args: argparse.Namespace) -> dict[str, Any]:
    with EmbeddedNatsServer() as server:
        assert server.pid is not None
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_layout(js)
        index = await InstanceIndex.open(js, IndexSettings(retention=Retention(live=None, archive=60)))
        for start in range(0, args.instances, 500):
            states = [
                r.InstanceState(
                    id=f"i{n:07d}", tenant="bench", process_id="p", version=1, state="completed", started=ENDED, ended=ENDED
                )
                for n in range(start, min(args.instances, start + 500))
            ]
            history = [js.publish(layout.history_subject(s.tenant, s.id), b"{}") for s in states for _ in range(2)]
            await asyncio.gather(*history)
            await index.send([w for s in states for w in index.write(s, index.entry(s), None)])
        publisher = await JetStreamPublisher(nc).start()
        options: dict[str, Any] = {}  # only what the Sweeper under test takes (an older one takes neither)
        accepted = inspect.signature(Sweeper).parameters
        if "publisher" in accepted and args.through == "publisher":
            options["publisher"] = publisher
        if "window" in accepted and args.window:
            options["window"] = args.window
        sweeper = Sweeper(js, index, lambda: datetime(2027, 1, 1, tzinfo=UTC), **options)
        load = os.getloadavg()[0]
        cpu0, server0, t0 = time.process_time(), _cpu(server.pid), time.monotonic()
        while await sweeper.sweep_once() >= sweeper.batch:
            pass
        seconds = time.monotonic() - t0
        cpu, server_cpu = time.process_time() - cpu0, _cpu(server.pid) - server0
        left = (await js.stream_info(layout.STREAM_HISTORY)).state.messages
        await publisher.stop()
        await nc.close()
    per_k = 1000 / max(sweeper.swept, 1)
    return {
        "swept": sweeper.swept,
        "history_left": left,
        "seconds": round(seconds, 2),
        "swept_per_s": round(sweeper.swept / seconds),
        "cpu_s_per_1000": {"sweep": round(cpu * per_k, 3), "nats-server": round(server_cpu * per_k, 3)},
        "load_avg": round(load, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    for _ in range(args.runs):
        print(json.dumps(asyncio.run(one_run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
