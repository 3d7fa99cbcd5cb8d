"""A three-node NATS cluster with R3 streams and buckets: one node killed (SIGKILL) under load
and brought back. Streams and buckets fail over; every instance completes exactly once."""

from __future__ import annotations

import asyncio
import time

import pytest
from natsflow_engine.runtime.setup import LayoutSettings

from bench.common import NatsCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COUNT = 3000


async def test_cluster_node_killed_and_restarted(cluster: NatsCluster, harness_factory):
    h = await harness_factory(cluster.url, LayoutSettings(replicas=3, command_ack_wait=3.0))
    await h.start_engine("engine-a")
    await h.start_engine("engine-b")
    await h.start_worker(timeout=5.0)
    progress: list[int] = []
    outage: list[float] = []

    async def chaos() -> None:
        for _ in range(200):  # kill once a fifth of the work is done (bounded wait)
            progress.append(await h.history_count())
            if progress[-1] >= 2 * COUNT // 5:
                break
            await asyncio.sleep(0.1)
        outage.append(time.monotonic())
        await asyncio.to_thread(cluster.kill_node, 0)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(cluster.start_node, 0)
        outage.append(time.monotonic())

    chaos_task = asyncio.create_task(chaos())
    await h.launch(COUNT)
    await chaos_task
    assert progress[-1] < 2 * COUNT, f"the node was killed after the run: {progress[-1]}"
    await h.wait_history(2 * COUNT, timeout=180)
    await h.verify(outage=(outage[0], outage[1] + 10.0))  # + stream leader elections after the return
    print(f"cluster: {len(h.repeats)} jobs ran again (first run around the node's outage)")
