"""A KV write of the instance record that fails with a timeout (the reply lost in a failover, or
no stream leader for a moment) must leave no half-applied state behind in the engine.

The command is redelivered; the engine must load the record again (or its unmodified cached
copy), apply the command and persist it. Found by test_faults_cluster.py: the interpreter
mutates the cached state object in place, so after a failed ``kv.update`` the cache holds the
new state with the old revision and ``cmd.id`` in ``applied``; the redelivered command is then
acked as "already applied", its effects are published from memory, and the KV record stays at
the previous step for ever (the instance is stuck while its history says it completed).
"""

from __future__ import annotations

import asyncio

import nats
import pytest
from natsflow_engine.runtime.engine import Engine, EngineSettings
from natsflow_engine.runtime.setup import LayoutSettings
from natsflow_engine.server import EmbeddedNatsServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


class FailingUpdates:
    """A KV handle whose first ``failures`` updates time out without reaching the server."""

    def __init__(self, kv, failures: int) -> None:
        self._kv = kv
        self.failures = failures

    async def update(self, key, value, last=None):
        if self.failures > 0:
            self.failures -= 1
            raise nats.errors.TimeoutError
        return await self._kv.update(key, value, last=last)

    def __getattr__(self, name):
        return getattr(self._kv, name)


async def test_failed_record_write_is_retried_not_forgotten(server: EmbeddedNatsServer, harness_factory):
    h = await harness_factory(server.url, LayoutSettings(command_ack_wait=1.0))
    nc = await h.connect()
    engine = await Engine(nc, EngineSettings(fetch_timeout=0.5), layout_settings=h.settings).start()
    try:
        engine.store.kv = FailingUpdates(engine.store.kv, failures=5)  # the job completions' first writes fail
        await h.start_worker()
        await h.launch(20)
        await h.wait_history(2 * 20, timeout=30)
        await asyncio.sleep(1.5)  # let redeliveries settle
        states = await h.records()
        stuck = sorted(i for i in h.ids if states[i].state != "completed")
        assert not stuck, (
            f"{len(stuck)} instances stuck at step {[states[i].step for i in stuck]} although their history says completed"
        )
        await h.verify()
    finally:
        await engine.stop(timeout=2.0)
        await nc.close()
