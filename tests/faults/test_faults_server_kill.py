"""The only nats-server killed (SIGKILL) under load and started again on its store: no instance
is lost or duplicated, and every job that ran twice carries the same job key as its first run,
so a handler that remembers the keys it finished does its side effect once.

How many jobs ran twice (their completion or acknowledgement was lost with the server) is
printed and recorded as the test's ``jobs_run_twice`` and ``double_run_rate`` user properties
(in a ``--junitxml`` report); it is a measurement, not an assertion."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from natsflow_engine.runtime.setup import JobConsumerSettings, LayoutSettings
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.worker import Job, Worker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COUNT = 4000


async def test_single_server_killed_under_load(
    server: EmbeddedNatsServer, harness_factory: Any, request: pytest.FixtureRequest
) -> None:
    h = await harness_factory(server.url, LayoutSettings(command_ack_wait=3.0))
    await h.start_engine("engine-a")
    await h.start_engine("engine-b")
    effects: Counter[str] = Counter()  # side effects of a handler that de-duplicates by job.key
    done: set[str] = set()
    h.worker = Worker(nc=await h.connect())

    @h.worker.task("check", concurrency=64, consumer=JobConsumerSettings(timeout=5.0))
    async def check(job: Job) -> dict[str, Any]:
        h.runs[(job.key, job.attempt)] += 1
        if job.key in h.first_run:
            h.repeats.setdefault(job.key, h.first_run[job.key])
        else:
            h.first_run[job.key] = time.monotonic()
        if job.key not in done:  # the documented de-duplication: remember finished keys
            effects[job.key] += 1
            done.add(job.key)
        return {"checked": True}

    await h.worker.start()
    progress: list[int] = []
    outage: list[float] = []

    async def kill() -> None:
        for _ in range(200):  # kill once a fifth of the work is done (bounded wait)
            progress.append(await h.history_count())
            if progress[-1] >= 2 * COUNT // 5:
                break
            await asyncio.sleep(0.1)
        outage.append(time.monotonic())
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(server.start)
        outage.append(time.monotonic())

    kill_task = asyncio.create_task(kill())
    await h.launch(COUNT)
    await kill_task
    assert progress[-1] < 2 * COUNT, f"the server was killed after the run: {progress[-1]}"
    await h.wait_history(2 * COUNT, timeout=180)
    # no instance lost, none duplicated, each completed once, each job's completion applied once
    await h.verify(outage=(outage[0], outage[1]))
    states = await h.records()
    assert set(states) == set(h.ids), f"{len(set(states) - set(h.ids))} instances nobody launched"
    # the job key is the de-duplication key: one key per job, the same on every delivery
    keys = {key for key, _ in h.runs}
    assert len(keys) == COUNT
    assert all(effects[key] == 1 for key in keys)
    runs = sum(h.runs.values())
    twice = len(h.repeats)
    rate = twice / COUNT
    request.node.user_properties += [("jobs_run_twice", twice), ("double_run_rate", round(rate, 5))]
    oldest = max((outage[0] - first for first in h.repeats.values()), default=0.0)
    as_first = sum(1 for (_, attempt), n in h.runs.items() if attempt == 1 and n > 1)
    print(
        f"single server SIGKILL: {COUNT} instances, {runs} handler runs for {len(keys)} jobs; "
        f"{twice} jobs ran again ({rate:.2%}), each under its first run's job key; "
        f"their first runs began up to {oldest:.1f}s before the kill; {as_first} were delivered "
        "as attempt 1 again"
    )
