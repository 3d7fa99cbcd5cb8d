"""Minted JWTs against a real nats-server in operator mode (full resolver, accounts pushed at
runtime with $SYS.REQ.CLAIMS.UPDATE)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import nats
import pytest
from nats.aio.client import RawCredentials
from nats.js.errors import APIError
from natsflow_engine.accounts import (
    AccountLimits,
    ClaimsUpdateError,
    OperatorTrust,
    TenantAccount,
    delete_accounts,
    push_account,
)
from tenancy_kit import OperatorServer, probe, refused

from natsflow.cli.common import CliContext

DEADLINE = 30.0  # generous correctness deadline for the server to act on a change


async def test_an_account_pushed_at_runtime_serves_its_users(operator_server: OperatorServer) -> None:
    tenant = await operator_server.tenant("a")
    user = tenant.user("app", expires=int(time.time()) + 600)
    nc = await nats.connect(operator_server.url, user_credentials=RawCredentials(user.creds))
    try:
        js = nc.jetstream()
        await js.add_stream(name="S", subjects=["s.>"])
        ack = await js.publish("s.one", b"x")
        assert ack.stream == "S" and ack.seq == 1
    finally:
        await nc.close()


async def test_a_user_of_an_account_never_pushed_is_refused(operator_server: OperatorServer) -> None:
    unknown = TenantAccount("ghost")
    assert "Authorization Violation" in await refused(operator_server.url, unknown.user("u"))


async def test_an_account_signed_by_another_operator_serves_no_user(operator_server: OperatorServer) -> None:
    # nats-server 2.15's full resolver stores such a JWT ("jwt updated") but never trusts it
    stranger = OperatorTrust.create("stranger")
    account = TenantAccount("x")
    async with operator_server.system() as nc:
        with contextlib.suppress(ClaimsUpdateError):
            await push_account(nc, account.jwt(stranger.signing_key))
    assert "Authorization Violation" in await refused(operator_server.url, account.user("u"))


async def test_a_malformed_account_update_is_refused(operator_server: OperatorServer) -> None:
    async with operator_server.system() as nc:
        with pytest.raises(ClaimsUpdateError, match="refused"):
            await push_account(nc, "not.a.jwt")


async def test_an_expired_user_is_refused(operator_server: OperatorServer) -> None:
    tenant = await operator_server.tenant("a")
    expired = tenant.user("old", issued_at=int(time.time()) - 120, expires=int(time.time()) - 60)
    assert "Authorization Violation" in await refused(operator_server.url, expired)


async def test_a_user_is_disconnected_when_its_jwt_expires(operator_server: OperatorServer) -> None:
    tenant = await operator_server.tenant("a")
    short = tenant.user("short", expires=int(time.time()) + 2)
    conn = await probe(operator_server.url, short)
    await asyncio.wait_for(conn.closed.wait(), DEADLINE)
    assert "expired" in str(conn.nc.last_error).lower()


async def test_a_revoked_user_is_disconnected_and_refused(operator_server: OperatorServer) -> None:
    tenant = await operator_server.tenant("a")
    victim, bystander = tenant.user("victim"), tenant.user("bystander")
    conn = await probe(operator_server.url, victim)
    other = await probe(operator_server.url, bystander)
    try:
        tenant.revoke(victim.public)
        await operator_server.push(tenant)
        await asyncio.wait_for(conn.closed.wait(), DEADLINE)
        assert "revoked" in str(conn.nc.last_error).lower()
        assert "Authorization Violation" in await refused(operator_server.url, victim)
        # the other user of the account is untouched
        assert other.nc.is_connected
        await other.nc.flush(timeout=5)
    finally:
        await other.close()


async def test_revoking_every_user_keeps_users_issued_later(operator_server: OperatorServer) -> None:
    tenant = await operator_server.tenant("a")
    old = tenant.user("old", issued_at=int(time.time()) - 10)
    conn = await probe(operator_server.url, old)
    tenant.revoke_all(at=int(time.time()) - 5)
    await operator_server.push(tenant)
    await asyncio.wait_for(conn.closed.wait(), DEADLINE)
    fresh = await probe(operator_server.url, tenant.user("new"))
    try:
        await fresh.nc.flush(timeout=5)
    finally:
        await fresh.close()


async def test_jetstream_limits_of_one_account_leave_the_other_working(
    operator_server: OperatorServer,
) -> None:
    small = AccountLimits(memory=64 * 1024, disk=64 * 1024, streams=1, consumers=1)
    a = await operator_server.tenant("a", small)
    b = await operator_server.tenant("b", small)
    nca = await nats.connect(operator_server.url, user_credentials=RawCredentials(a.user("app").creds))
    ncb = await nats.connect(operator_server.url, user_credentials=RawCredentials(b.user("app").creds))
    try:
        jsa, jsb = nca.jetstream(), ncb.jetstream()
        await jsa.add_stream(name="S", subjects=["s.>"])
        with pytest.raises(APIError, match="maximum number of streams"):
            await jsa.add_stream(name="T", subjects=["t.>"])
        await jsa.add_consumer("S", durable_name="c1")
        with pytest.raises(APIError, match="maximum consumers"):
            await jsa.add_consumer("S", durable_name="c2")
        payload = b"x" * 4096
        with pytest.raises(APIError, match="resource limits exceeded"):
            for _ in range(64):  # 256 KiB into an account of 64 KiB
                await jsa.publish("s.fill", payload)
        info = await jsa.account_info()
        assert info.streams == 1 and info.consumers == 1
        # b has the same limits, all of them still free
        await jsb.add_stream(name="S", subjects=["s.>"])
        ack = await jsb.publish("s.one", b"b's message")
        assert ack.seq == 1
        await jsb.add_consumer("S", durable_name="c1")
        msg = await (await jsb.pull_subscribe_bind("c1", stream="S")).fetch(1, timeout=5)
        assert msg[0].data == b"b's message"
    finally:
        await nca.close()
        await ncb.close()


async def test_connection_limit(operator_server: OperatorServer) -> None:
    tenant = await operator_server.tenant("a", AccountLimits(connections=1))
    first = await probe(operator_server.url, tenant.user("one"))
    try:
        assert (
            "maximum account active connections"
            in (await refused(operator_server.url, tenant.user("two"))).lower()
        )
        await first.nc.flush(timeout=5)
    finally:
        await first.close()


async def test_payload_limit(operator_server: OperatorServer) -> None:
    tenant = await operator_server.tenant("a", AccountLimits(payload=1024))
    conn = await probe(operator_server.url, tenant.user("one"))
    await conn.nc.publish("x", b"y" * 1000)
    await conn.nc.flush(timeout=5)
    # the client learns the server-wide limit before it authenticates; the server enforces the account's
    await conn.nc.publish("x", b"y" * 2000)
    await asyncio.wait_for(conn.closed.wait(), DEADLINE)
    assert "maximum payload" in str(conn.nc.last_error).lower()


async def test_a_creds_file_connects_the_command_line(
    operator_server: OperatorServer, tmp_path: Path
) -> None:
    tenant = await operator_server.tenant("a")
    path = tmp_path / "a.creds"
    path.write_text(tenant.user("cli").creds)
    cli = CliContext(nats_url=operator_server.url, creds=str(path), tenant="a", debug=False)
    nc = await cli.connect()
    try:
        await nc.flush(timeout=5)
        assert nc.is_connected
    finally:
        await nc.close()


async def test_deleting_an_account_disconnects_and_refuses_its_users(operator_server: OperatorServer) -> None:
    tenant = await operator_server.tenant("gone")
    other = await operator_server.tenant("stays")
    conn = await probe(operator_server.url, tenant.user("app"))
    bystander = await probe(operator_server.url, other.user("app"))
    try:
        await conn.nc.jetstream().add_stream(name="S", subjects=["s.>"])
        await conn.nc.jetstream().publish("s.1", b"kept?")
        async with operator_server.system() as nc:
            await delete_accounts(nc, operator_server.trust.signing_key, [tenant.public])
        await asyncio.wait_for(conn.closed.wait(), DEADLINE)
        assert "Authorization Violation" in await refused(operator_server.url, tenant.user("later"))
        await bystander.nc.flush(timeout=5)
        # pushed again, the account finds its JetStream data where it left it
        await operator_server.push(tenant)
        again = await probe(operator_server.url, tenant.user("back"))
        info = await again.nc.jetstream().stream_info("S")
        assert info.state.messages == 1
        await again.close()
    finally:
        await bystander.close()


async def test_an_account_deletion_must_be_signed_by_the_operator(operator_server: OperatorServer) -> None:
    tenant = await operator_server.tenant("a")
    async with operator_server.system() as nc:
        with pytest.raises(ClaimsUpdateError, match="refused"):
            await delete_accounts(nc, OperatorTrust.create("stranger").signing_key, [tenant.public])
    conn = await probe(operator_server.url, tenant.user("app"))
    await conn.nc.flush(timeout=5)
    await conn.close()
