"""The reference process executed by SpiffWorkflow, for comparison.

SpiffWorkflow is an embeddable BPMN library: no NATS, no worker, no durability of its own. Two
variants, sequential in one process:

* ``memory``: create the workflow, run engine steps to the waiting task, complete it with the
  worker's result, run to the end. Nothing leaves memory.
* ``serialized``: the same, with the workflow serialized to JSON after each step and restored
  from that JSON for the next one, as a durable engine built on SpiffWorkflow has to (the
  storage write itself is not counted, so this is still a lower bound of its cost).

The model is ``bench/models/reference-spiff.bpmn``: the reference process without Zeebe
extensions, its service task as a user task (the workflow waits for an external completion,
like natsflow waits for a worker) and its condition in Python.

``python -m bench.spiff --instances N`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser import BpmnParser
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.util.task import TaskState

from bench.common import SPIFF_BPMN


def run(count: int, serialized: bool) -> dict[str, Any]:
    parser = BpmnParser()
    parser.add_bpmn_file(str(SPIFF_BPMN))
    spec = parser.get_spec("reference")
    serializer = BpmnWorkflowSerializer()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    latencies: list[float] = []
    ends: dict[str, int] = {}
    size = 0
    begin = time.perf_counter()
    for n in range(count):
        t0 = time.perf_counter()
        wf = BpmnWorkflow(spec)
        wf.task_tree.data["amount"] = n % 200
        wf.do_engine_steps()
        if serialized:
            blob = serializer.serialize_json(wf)
            size = len(blob)
            wf = serializer.deserialize_json(blob)
        task = wf.get_next_task(state=TaskState.READY, manual=True)
        assert task is not None and task.task_spec.bpmn_id == "check"
        task.data["checked"] = True
        task.run()
        wf.do_engine_steps()
        if serialized:
            blob = serializer.serialize_json(wf)
        assert wf.is_completed()
        end = next(
            t.task_spec.bpmn_id
            for t in wf.get_tasks(state=TaskState.COMPLETED)
            if t.task_spec.bpmn_id and t.task_spec.bpmn_id.startswith("end")
        )
        ends[end] = ends.get(end, 0) + 1
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - begin
    usage = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()
    return {
        "variant": "serialized" if serialized else "memory",
        "completed": count,
        "seconds": seconds,
        "rate": count / seconds,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        "ends": ends,
        "state_bytes": size,
        "cpu_s": usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime,
        "maxrss_kb": usage.ru_maxrss,
    }


def main() -> None:
    p = argparse.ArgumentParser(description="the reference process on SpiffWorkflow")
    p.add_argument("--instances", type=int, default=10_000)
    p.add_argument("--variant", choices=["memory", "serialized"], default="memory")
    args = p.parse_args()
    print(json.dumps(run(args.instances, args.variant == "serialized")), flush=True)


if __name__ == "__main__":
    main()
