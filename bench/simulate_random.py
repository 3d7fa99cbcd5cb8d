"""Simulating many instances with random choices: ``python bench/simulate_random.py``.

Runs ``--instances`` instances of the order-fulfilment example in one simulation (its own
embedded nats-server and engine, virtual clock) with random stock and payment outcomes, as
``natsflow simulate`` and the console's modeler do, and prints the wall time and the instances
per element. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from natsflow_console.simulation import parse_scenario, simulate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "order-fulfilment"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    scenario = parse_scenario(
        {
            "variables": json.loads((EXAMPLE / "order.json").read_text()),
            "instances": args.instances,
            "seed": args.seed,
            "tasks": {
                "check-stock": [{"complete": {"inStock": True}, "weight": 4}, {"complete": {"inStock": False}}],
                "charge-payment": [{"complete": {"charged": True}, "weight": 9}, {"error": {"code": "PAYMENT_DECLINED"}}],
            },
        }
    )
    began = time.perf_counter()
    result = asyncio.run(simulate((EXAMPLE / "order-fulfilment.bpmn").read_text(), scenario))
    took = time.perf_counter() - began
    print(f"{result.instances} instances in {took:.2f} s (simulation's own measure {result.seconds:.2f} s): {result.states}")
    for element, n in sorted(result.elements.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {element:20} {n}")


if __name__ == "__main__":
    main()
