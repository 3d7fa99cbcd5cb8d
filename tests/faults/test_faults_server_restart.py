"""nats-server stopped and started again mid-run (file storage, same port and store):
engines and workers reconnect, every instance completes exactly once."""

from __future__ import annotations

import asyncio
import time

import pytest
from natsflow_engine.runtime.setup import LayoutSettings
from natsflow_engine.server import EmbeddedNatsServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COUNT = 5000


async def test_server_restart_mid_run(server: EmbeddedNatsServer, harness_factory):
    h = await harness_factory(server.url, LayoutSettings(command_ack_wait=3.0))
    await h.start_engine("engine-a")
    await h.start_engine("engine-b")
    await h.start_worker(timeout=5.0)
    progress: list[int] = []
    outage: list[float] = []

    async def restart() -> None:
        for _ in range(100):  # restart once a fifth of the work is done (bounded wait)
            progress.append(await h.history_count())
            if progress[-1] >= 2 * COUNT // 5:
                break
            await asyncio.sleep(0.1)
        outage.append(time.monotonic())
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(server.start)
        outage.append(time.monotonic())

    restart_task = asyncio.create_task(restart())
    await h.launch(COUNT)
    await restart_task
    assert progress[-1] < 2 * COUNT, f"the restart came after the run: {progress[-1]}"
    await h.wait_history(2 * COUNT, timeout=150)
    await h.verify(outage=(outage[0], outage[1]))
    print(f"server restart: {len(h.repeats)} jobs ran again (first run before the restart ended)")
