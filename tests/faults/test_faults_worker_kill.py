"""A worker killed (SIGKILL) in the middle of jobs: the jobs it held are redelivered after the
consumer's ack wait (JobConsumerSettings.timeout) to another worker and complete; each job's
completion is applied once."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import pytest
from natsflow_engine.runtime.setup import LayoutSettings
from natsflow_engine.server import EmbeddedNatsServer

from bench.procs import NodeProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

COUNT = 300
ACK_WAIT = 2.0


def read_log(path: Path) -> list[tuple[str, str, int]]:
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return [(what, key, int(attempt)) for what, key, attempt in lines if what in ("start", "done")]


def held_jobs(log: Path) -> tuple[set[str], int]:
    """Jobs started and not finished, and how many finished, by the log so far."""
    lines = read_log(log)
    done = {key for what, key, _ in lines if what == "done"}
    return {key for what, key, _ in lines if what == "start"} - done, len(done)


async def freeze_holding_jobs(node: NodeProcess, log: Path, *, done_at_least: int) -> set[str]:
    """Stop ``node`` (SIGSTOP) once it has finished ``done_at_least`` jobs while holding others,
    and return the jobs it holds; a freeze that finds it between jobs lets it go on."""
    for _ in range(600):
        held, done = held_jobs(log)
        if done >= done_at_least and held:
            os.kill(node.pid, signal.SIGSTOP)
            held, _ = held_jobs(log)  # nothing is written after the stop
            if held:
                return held
            os.kill(node.pid, signal.SIGCONT)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the worker never held a job after {done_at_least} done: {held_jobs(log)}")


async def test_worker_killed_mid_job(server: EmbeddedNatsServer, harness_factory, tmp_path: Path):
    h = await harness_factory(server.url, LayoutSettings(command_ack_wait=5.0))
    await h.start_engine("engine")

    def worker_args(log: Path) -> list[str]:
        return [
            "--url", server.url, "--roles", "worker", "--concurrency", "16",
            "--job-timeout", str(ACK_WAIT), "--job-delay", "0.2", "--job-log", str(log),
        ]  # fmt: skip

    log1, log2 = tmp_path / "jobs-1.log", tmp_path / "jobs-2.log"
    await h.launch(COUNT)  # every job waits in the consumer before the first worker starts
    first = await NodeProcess("worker-1", worker_args(log1), log_dir=tmp_path).start()
    h.nodes.append(first)
    held = await freeze_holding_jobs(first, log1, done_at_least=40)
    await first.kill()  # frozen since the log was read: it holds exactly `held`
    h.nodes.append(await NodeProcess("worker-2", worker_args(log2), log_dir=tmp_path).start())
    await h.wait_history(2 * COUNT, timeout=90)
    second = read_log(log2)
    redelivered = {key: attempt for what, key, attempt in second if what == "start" and key in held}
    assert set(redelivered) == held, f"held jobs never redelivered: {sorted(held - set(redelivered))[:5]}"
    assert all(attempt >= 2 for attempt in redelivered.values()), redelivered
    assert held <= {key for what, key, _ in second if what == "done"}
    h.runs = Counter((key, attempt) for what, key, attempt in read_log(log1) + second if what == "start")
    await h.verify()
