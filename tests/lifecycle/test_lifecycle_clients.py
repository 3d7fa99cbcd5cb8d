"""Library entry points meet a connection closed for good: ``Worker.run`` ends with an error
(so ``asyncio.run(app.run())`` exits non-zero), and the operator's connection pool opens a new
connection at the next use."""

from __future__ import annotations

import asyncio

import nats
import pytest
from lifecycle_kit import DEADLINE, Platform, until
from natsflow_engine.errors import ConnectionFailedError
from natsflow_engine.worker import Job, Worker
from natsflow_operator.connections import NatsPool, NatsTarget


async def test_worker_run_raises_when_its_connection_is_closed_for_good(acme: Platform) -> None:
    nc = await nats.connect(acme.url, user_credentials=str(acme.creds_file), max_reconnect_attempts=-1)
    worker = Worker(nc=nc, tenant="acme")
    worker.closed_check = 0.05

    @worker.task("noop")
    async def noop(job: Job) -> None:
        return None

    await worker.start()
    running = asyncio.create_task(worker.run())
    try:
        await acme.close_connections()
        with pytest.raises(ConnectionFailedError, match="maximum account active connections"):
            async with asyncio.timeout(DEADLINE):
                await running
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await nc.close()


async def test_operator_pool_replaces_a_connection_the_server_closed(acme: Platform) -> None:
    pool = NatsPool(connect_timeout=5)
    target = NatsTarget(acme.url, creds=acme.creds_file.read_text())
    try:
        first = await pool.get(target)
        await acme.close_connections()
        await until(lambda: first.nc.is_closed, "connection closed by the server")
        await acme.allow_connections()
        second = await pool.get(target)
        assert second.nc is not first.nc and second.nc.is_connected
        assert (await second.js.account_info()).streams > 0  # the layout is there and usable
    finally:
        await pool.close()
