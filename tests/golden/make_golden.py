"""Write the golden instance records of :mod:`scenarios` as the running code stores them.

Run once per record version, with the code that writes that version, before changing it::

    .venv/bin/python tests/golden/make_golden.py v1

Each scenario runs on a real engine and nats-server (the process test kit, virtual clock from
``scenarios.START``); the raw KV value of the captured instance is written to
``tests/golden/<version>/<scenario>.json``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from natsflow_engine import layout
from natsflow_engine.testing import ProcessTestEngine
from natsflow_engine.worker import Job
from scenarios import SCENARIOS, START, TENANT, Scenario


def _worker(result: dict[str, Any]) -> Any:
    async def handler(job: Job) -> dict[str, Any]:
        return dict(result)

    return handler


async def capture(scenario: Scenario) -> bytes:
    async with ProcessTestEngine(tenant=TENANT, start_time=datetime.fromisoformat(START)) as kit:
        for _pid, xml in scenario.models:
            await kit.deploy(xml)
        for task_type, result in scenario.workers.items():
            kit.task(task_type)(_worker(result))
        iid = await kit.start_instance(scenario.process, scenario.variables)
        await kit.wait_until_idle()
        if scenario.capture != "started":
            [iid] = await kit.instances(scenario.capture)
        entry = await kit.instances_kv.get(layout.instance_key(TENANT, iid))
        assert entry.value is not None
        return entry.value


async def main(version: str) -> None:
    out = Path(__file__).parent / version
    out.mkdir(exist_ok=True)
    for scenario in SCENARIOS:
        raw = await capture(scenario)
        pretty = json.dumps(json.loads(raw), indent=1, sort_keys=True)
        (out / f"{scenario.name}.json").write_text(pretty + "\n")
        print(scenario.name, len(raw), "bytes")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
