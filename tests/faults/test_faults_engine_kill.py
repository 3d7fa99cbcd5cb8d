"""kill -9 of an engine replica at random points under load: nothing is lost or duplicated."""

from __future__ import annotations

import asyncio
import random

import pytest
from natsflow_engine.runtime.setup import LayoutSettings
from natsflow_engine.server import EmbeddedNatsServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COUNT = 5000
KILLS = 4


async def test_engine_replicas_killed_at_random_points(server: EmbeddedNatsServer, harness_factory):
    h = await harness_factory(server.url, LayoutSettings(command_ack_wait=3.0))
    engines = [await h.start_engine("engine-a"), await h.start_engine("engine-b")]
    await h.start_worker()
    rng = random.Random(7)
    progress: list[int] = []

    async def chaos() -> None:
        for n in range(KILLS):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            victim = engines[n % 2]
            progress.append(await h.history_count())
            await victim.kill()  # SIGKILL: no graceful stop, in-flight commands are not acked
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            engines[n % 2] = await h.start_engine(f"{victim.name}-{n}")

    chaos_task = asyncio.create_task(chaos())
    await h.launch(COUNT)
    await chaos_task
    await h.wait_history(2 * COUNT, timeout=150)
    assert progress[0] < 2 * COUNT, f"the first kill came after the run: {progress}"
    await h.verify()
