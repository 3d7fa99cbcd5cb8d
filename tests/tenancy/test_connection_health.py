"""A tenant whose connection the server closes for good is unhealthy on its own: its state, a
metric and a log line say so, it is retried with backoff and comes back, while the other
tenant and the replica's /healthz are untouched."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from natsflow_engine.accounts import AccountLimits
from natsflow_engine.accounts.connections import (
    ConnectionSettings,
    TenantConnections,
    TenantCredentials,
    TenantState,
)
from natsflow_engine.observability import HealthServer
from prometheus_client import CollectorRegistry
from tenancy_kit import OperatorServer

FAST = ConnectionSettings(
    initial_backoff=0.05, max_backoff=0.2, connect_timeout=5, reconnect_attempts=2, reconnect_wait=0.1
)
DEADLINE = 30.0


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {DEADLINE}s")
        await asyncio.sleep(0.01)


async def _healthz(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\n\r\n")
    await writer.drain()
    status = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return status


async def test_a_closed_tenant_connection_is_unhealthy_alone_and_retried(
    operator_server: OperatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    manager = TenantConnections(FAST, registry=registry)

    def up(tenant: str) -> float | None:
        return registry.get_sample_value("natsflow_tenant_connection_up", {"tenant": tenant})

    def failures(tenant: str) -> float:
        found = registry.get_sample_value("natsflow_tenant_connection_failures_total", {"tenant": tenant})
        return found or 0.0

    caplog.set_level(logging.WARNING, logger="natsflow_engine.accounts.connections")
    try:
        sick, well = await operator_server.tenant("hc-sick"), await operator_server.tenant("hc-well")
        for account in (sick, well):
            creds = account.user("platform").creds
            await manager.add(TenantCredentials(account.tenant, operator_server.url, creds))
        await manager.wait_ready("hc-sick", DEADLINE)
        well_client = await manager.wait_ready("hc-well", DEADLINE)
        assert up("hc-sick") == 1 and up("hc-well") == 1 and failures("hc-sick") == 0
        async with HealthServer("127.0.0.1", 0, registry=registry) as health:
            sick.limits = AccountLimits(connections=0)  # the server closes its connections for good
            await operator_server.push(sick)
            await _until(lambda: failures("hc-sick") >= 2, "the sick tenant retried")
            assert manager.health("hc-sick").state is not TenantState.READY
            assert up("hc-sick") == 0
            assert "maximum account active connections" in (manager.health("hc-sick").last_error or "")
            assert any(
                "hc-sick" in r.getMessage() and "retry" in r.getMessage() for r in caplog.records
            ), caplog.text
            assert (await _healthz(health.port)).split()[1] == b"200"
            assert up("hc-well") == 1 and failures("hc-well") == 0
            assert manager.client("hc-well") is well_client and well_client.is_connected
            sick.limits = AccountLimits()
            await operator_server.push(sick)
            await manager.wait_ready("hc-sick", DEADLINE)
            assert up("hc-sick") == 1
        await manager.remove("hc-sick")
        assert up("hc-sick") is None
    finally:
        await manager.close()
