"""Is an atomic-batch layout worth it? The bare loop of ``bench/limit.py`` in its variants.

    python -m bench.atomic [--instances 5000] [--rounds 2]

Runs ``bench.limit --variant bare|index|atomic`` (see its docstring) alternately, each on a
fresh file-storage nats-server, ``--rounds`` times, and prints per run the rate, the round trips
and messages sent per instance, and the CPU seconds per 1,000 instances of the loop and of
nats-server. The figures and the decision they led to are in docs/design.md ("Atomic batches").
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # pragma: no cover - run as a file
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.common import monitored_server
from bench.limit import VARIANTS
from bench.procs import Sampler
from bench.scenarios import _python_json


async def one(variant: str, instances: int, timeout: float) -> dict[str, Any]:
    server, _ = monitored_server()
    with server:
        assert server.pid is not None
        with Sampler({"nats-server": server.pid}) as sampler:
            cpu0 = sampler.cpu()
            args = ["bench.limit", "--url", server.url, "--instances", str(instances), "--variant", variant]
            result = await _python_json(args, timeout)
            cpu1 = sampler.cpu()
    done = max(1, result["completed"])
    sent: dict[str, int] = result["sent"]
    return {
        "variant": variant,
        "rate": result["rate"],
        "round_trips": sum(v for k, v in sent.items() if k.startswith("req:")) / done,
        "msgs_out": sum(v for k, v in sent.items() if not k.startswith("req:")) / done,
        "cpu": result["cpu_s"] / done * 1000,
        "server_cpu": sum(cpu1[k] - cpu0[k] for k in cpu1) / done * 1000,
    }


async def main(instances: int, rounds: int, timeout: float) -> None:
    print("| variant | PI/s | round trips / PI | msgs sent / PI | CPU s / 1000 PI (loop; nats-server) |")
    print("|---|---|---|---|---|")
    for _ in range(rounds):
        for variant in VARIANTS:
            r = await one(variant, instances, timeout)
            print(
                f"| {r['variant']} | {r['rate']:.0f} | {r['round_trips']:.2f} | {r['msgs_out']:.2f} "
                f"| {r['cpu']:.2f}; {r['server_cpu']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--timeout", type=float, default=600.0)
    a = p.parse_args()
    asyncio.run(main(a.instances, a.rounds, a.timeout))
