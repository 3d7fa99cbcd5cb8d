"""What a multi-instance of instant iterations costs the interpreter (one step, no NATS).

    python -m bench.loops [--n 10000] [--profile]

For a parallel and a sequential multi-instance over ``n`` items, each iteration an empty
task (it completes at once), and the same with an embedded sub-process as the iteration: the
wall time of the one ``step`` that launches the instance and runs it to its end. Each line is
the best of three. The step must grow linearly with ``n``: compare ``--n 5000`` with
``--n 10000``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # pragma: no cover
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from natsflow_engine.bpmn import parse_bpmn
from natsflow_engine.bpmn.model import Process
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.interpreter import step

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">'
)


def _process(sequential: bool, subprocess: bool) -> Process:
    seq = ' isSequential="true"' if sequential else ""
    loop = (
        f"<bpmn:multiInstanceLoopCharacteristics{seq}><bpmn:extensionElements>"
        '<zeebe:loopCharacteristics inputCollection="=items" inputElement="item" />'
        "</bpmn:extensionElements></bpmn:multiInstanceLoopCharacteristics>"
    )
    if subprocess:
        inner = (
            '<bpmn:startEvent id="is" /><bpmn:task id="it" /><bpmn:endEvent id="ie" />'
            '<bpmn:sequenceFlow id="i1" sourceRef="is" targetRef="it" />'
            '<bpmn:sequenceFlow id="i2" sourceRef="it" targetRef="ie" />'
        )
        each = f'<bpmn:subProcess id="each">{loop}{inner}</bpmn:subProcess>'
    else:
        each = f'<bpmn:task id="each">{loop}</bpmn:task>'
    source = (
        f'{HEAD}<bpmn:process id="mi" isExecutable="true"><bpmn:startEvent id="s" />{each}<bpmn:endEvent id="e" />'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="each" />'
        '<bpmn:sequenceFlow id="f2" sourceRef="each" targetRef="e" /></bpmn:process></bpmn:definitions>'
    )
    return parse_bpmn(source).processes["mi"]


def _run(process: Process, n: int) -> float:
    launch = r.Launch(id="launch.x", tenant="t", instance="x", process_id="mi", version=1,
                      variables={"items": list(range(n))})
    started = time.perf_counter()
    result = step(process, None, launch, NOW)
    elapsed = time.perf_counter() - started
    assert result.state.state == "completed", result.state.incidents
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true", help="profile the parallel sub-process case once")
    args = parser.parse_args()
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(_run, _process(False, True), args.n)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return
    for sequential in (False, True):
        for subprocess in (False, True):
            process = _process(sequential, subprocess)
            best = min(_run(process, args.n) for _ in range(3))
            what = f"{'sequential' if sequential else 'parallel'} multi-instance, {args.n} instant " \
                   f"{'sub-processes' if subprocess else 'tasks'}"
            print(f"{what:60s} {best:8.2f} s  {best / args.n * 1e6:7.1f} µs/iteration", flush=True)


if __name__ == "__main__":
    main()
