"""One connection per tenant account: health per tenant, backoff, and one tenant's failure never
touching another."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.aio.client import Client
from natsflow_engine.accounts import TenantAccount
from natsflow_engine.accounts.connections import (
    ConnectionSettings,
    TenantConnections,
    TenantCredentials,
    TenantState,
    backoff_delay,
)
from natsflow_engine.errors import ConnectionFailedError, NotFoundError
from tenancy_kit import OperatorServer

FAST = ConnectionSettings(
    initial_backoff=0.05, max_backoff=0.2, connect_timeout=5, reconnect_attempts=2, reconnect_wait=0.1
)
DEADLINE = 30.0


class Recorder:
    def __init__(self, fail_for: set[str] | None = None) -> None:
        self.ready: list[tuple[str, Client]] = []
        self.lost: list[str] = []
        self.fail_for = fail_for or set()

    async def on_ready(self, tenant: str, client: Client) -> None:
        if tenant in self.fail_for:
            raise RuntimeError(f"cannot serve {tenant}")
        self.ready.append((tenant, client))

    async def on_lost(self, tenant: str) -> None:
        self.lost.append(tenant)


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def manager(recorder: Recorder) -> AsyncIterator[TenantConnections]:
    connections = TenantConnections(FAST, on_ready=recorder.on_ready, on_lost=recorder.on_lost)
    try:
        yield connections
    finally:
        await connections.close()


def creds(server: OperatorServer, account: TenantAccount, name: str = "platform") -> TenantCredentials:
    return TenantCredentials(account.tenant, server.url, account.user(name).creds)


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = DEADLINE) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def works(client: Client, subject: str) -> bool:
    sub = await client.subscribe(subject)
    await client.publish(subject, b"ping")
    msg = await sub.next_msg(timeout=5)
    await sub.unsubscribe()
    return msg.data == b"ping"


def test_backoff_grows_to_its_cap() -> None:
    settings = ConnectionSettings(initial_backoff=0.5, max_backoff=4.0, multiplier=2.0)
    assert [backoff_delay(settings, n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


async def test_each_tenant_gets_its_own_connection_in_its_account(
    operator_server: OperatorServer, manager: TenantConnections, recorder: Recorder
) -> None:
    a, b = await operator_server.tenant("a"), await operator_server.tenant("b")
    await manager.add(creds(operator_server, a))
    await manager.add(creds(operator_server, b))
    ca, cb = await manager.wait_ready("a", DEADLINE), await manager.wait_ready("b", DEADLINE)
    assert ca is not cb
    assert sorted(t for t, _ in recorder.ready) == ["a", "b"]
    assert await works(ca, "x") and await works(cb, "x")
    assert manager.health("a").state is TenantState.READY and manager.health("a").failures == 0
    with pytest.raises(NotFoundError):
        manager.health("c")


async def test_a_failing_tenant_backs_off_and_recovers_while_others_serve(
    operator_server: OperatorServer, manager: TenantConnections, recorder: Recorder
) -> None:
    good = await operator_server.tenant("good")
    bad = TenantAccount("bad")
    # the server knows the account, but not yet the signing key its users are signed with
    await operator_server.push(TenantAccount("bad", key=bad.key))
    await manager.add(creds(operator_server, bad))
    await manager.add(creds(operator_server, good))
    client = await manager.wait_ready("good", DEADLINE)
    await until(lambda: manager.health("bad").failures >= 3)
    health = manager.health("bad")
    assert health.state in (TenantState.BACKOFF, TenantState.CONNECTING)
    assert "authorization" in (health.last_error or "").lower()
    with pytest.raises(ConnectionFailedError, match="bad"):
        manager.client("bad")
    assert await works(client, "still")
    assert [t for t, _ in recorder.ready] == ["good"]
    # the account's new signing key arrives: the next retry connects
    await operator_server.push(bad)
    await manager.wait_ready("bad", DEADLINE)
    assert manager.health("bad").failures == 0
    assert manager.client("good") is client  # never disturbed


async def test_revoked_credentials_lose_one_tenant_only(
    operator_server: OperatorServer, manager: TenantConnections, recorder: Recorder
) -> None:
    a, b = await operator_server.tenant("a"), await operator_server.tenant("b")
    platform_a = a.user("platform")
    await manager.add(TenantCredentials("a", operator_server.url, platform_a.creds))
    await manager.add(creds(operator_server, b))
    await manager.wait_ready("a", DEADLINE)
    cb = await manager.wait_ready("b", DEADLINE)
    a.revoke(platform_a.public)
    await operator_server.push(a)
    await until(lambda: recorder.lost == ["a"])
    await until(lambda: manager.health("a").failures >= 2)
    assert "authorization" in (manager.health("a").last_error or "").lower()
    assert manager.client("b") is cb and await works(cb, "b-alive")
    # re-issued credentials replace the connection
    await manager.add(creds(operator_server, a, "platform-2"))
    await manager.wait_ready("a", DEADLINE)


async def test_a_tenant_whose_setup_fails_does_not_stop_the_others(operator_server: OperatorServer) -> None:
    recorder = Recorder(fail_for={"a"})
    manager = TenantConnections(FAST, on_ready=recorder.on_ready, on_lost=recorder.on_lost)
    try:
        a, b = await operator_server.tenant("a"), await operator_server.tenant("b")
        await manager.add(creds(operator_server, a))
        await manager.add(creds(operator_server, b))
        await manager.wait_ready("b", DEADLINE)
        await until(lambda: manager.health("a").failures >= 2)
        assert "cannot serve a" in (manager.health("a").last_error or "")
        assert recorder.lost.count("a") >= 1  # told to undo what it may have started
        # the setup works again: the tenant comes up
        recorder.fail_for.clear()
        await manager.wait_ready("a", DEADLINE)
    finally:
        await manager.close()


async def test_removing_a_tenant_closes_its_connection(
    operator_server: OperatorServer, manager: TenantConnections, recorder: Recorder
) -> None:
    a = await operator_server.tenant("a")
    await manager.add(creds(operator_server, a))
    client = await manager.wait_ready("a", DEADLINE)
    await manager.remove("a")
    assert client.is_closed
    assert recorder.lost == ["a"]
    assert manager.tenants == []
