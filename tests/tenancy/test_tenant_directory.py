"""A replica serves the tenants whose ``<tenant>.creds`` are in a directory, each on its own
connection to its account: a new file adds the tenant, a changed one reconnects, a removed one
stops serving it, a bad one backs off alone."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client, RawCredentials
from natsflow_engine.accounts import TenantAccount
from natsflow_engine.accounts.connections import ConnectionSettings, TenantState
from natsflow_engine.accounts.directory import CREDENTIALS_DIR_ENV, MAX_CREDS, TenantServing, read_credentials
from natsflow_engine.api.client import ApiClient
from natsflow_engine.errors import ConnectionFailedError
from natsflow_engine.observability import Metrics
from tenancy_kit import SERVICE_MODEL, OperatorServer, api_answers

from natsflow.cli.tenants import engine_services

FAST = ConnectionSettings(initial_backoff=0.2, max_backoff=1.0, connect_timeout=3.0)


def test_only_valid_tenant_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "shop.creds").write_text("shop's")
    (tmp_path / "..data").mkdir()  # the kubelet's entries of a mounted Secret
    (tmp_path / "..data" / "x.creds").write_text("x")
    (tmp_path / ".hidden.creds").write_text("h")
    (tmp_path / "Not_A_Tenant.creds").write_text("n")
    (tmp_path / "notes.txt").write_text("t")
    (tmp_path / "huge.creds").write_text("x" * (MAX_CREDS + 1))
    (tmp_path / "dir.creds").mkdir()
    (tmp_path / "linked.creds").symlink_to(tmp_path / "shop.creds")  # how the kubelet mounts keys
    assert read_credentials(tmp_path) == {"shop": "shop's", "linked": "shop's"}


@pytest.fixture
async def platform(operator_server: OperatorServer) -> AsyncIterator[dict[str, TenantAccount]]:
    yield {name: await operator_server.tenant(name) for name in ("a", "b")}


async def _api(operator_server: OperatorServer, account: TenantAccount, tenant: str) -> tuple[Client, ApiClient]:
    nc = await nats.connect(operator_server.url, user_credentials=RawCredentials(account.user("cli").creds))
    return nc, ApiClient(nc, tenant, timeout=5.0)


async def test_the_directory_decides_which_tenants_are_served(
    operator_server: OperatorServer, platform: dict[str, TenantAccount], tmp_path: Path
) -> None:
    a, b = platform["a"], platform["b"]
    (tmp_path / "a.creds").write_text(a.user("platform").creds)
    serving = TenantServing(tmp_path, operator_server.url, engine_services(Metrics(), 1), interval=0.1, settings=FAST)
    nc_a, api_a = await _api(operator_server, a, "a")
    nc_b, api_b = await _api(operator_server, b, "b")
    try:
        await serving.start()
        first = await serving.connections.wait_ready("a", timeout=30)
        await api_answers(api_a)
        (deployed,) = await api_a.deploy(SERVICE_MODEL)
        started = await api_a.start("charge", {"amount": 1}, wait=True)
        assert started.created and deployed.process_id == "charge"
        with pytest.raises(ConnectionFailedError):  # nobody serves b yet
            await ApiClient(nc_b, "b", timeout=1.0).workflows()

        # a new file: the poll adds the tenant, with an engine, API and trigger server of its own
        (tmp_path / "b.creds").write_text(b.user("platform").creds)
        await api_answers(api_b)
        assert await api_b.workflows() == []  # b's account, not a's

        # changed credentials: a reconnects as the new user and keeps serving
        (tmp_path / "a.creds").write_text(a.user("platform-rotated").creds)
        await serving.sync()
        second = await serving.connections.wait_ready("a", timeout=30)
        assert second is not first and first.is_closed
        assert (await api_a.instance(started.instance)).state == "active"

        # a removed file: b is no longer served, a goes on
        (tmp_path / "b.creds").unlink()
        await serving.sync()
        assert serving.connections.tenants == ["a"] and "b" not in serving.running
        with pytest.raises(ConnectionFailedError):
            await ApiClient(nc_b, "b", timeout=1.0).workflows()

        # a file that cannot connect backs off on its own; a is unaffected
        (tmp_path / "c.creds").write_text(a.user("x").creds.replace("-----BEGIN USER NKEY SEED-----", "broken"))
        await serving.sync()
        deadline = asyncio.get_running_loop().time() + 30
        while serving.connections.health("c").failures < 2:
            assert asyncio.get_running_loop().time() < deadline, serving.connections.health("c")
            await asyncio.sleep(0.05)
        assert serving.connections.health("c").state is not TenantState.READY
        assert serving.connections.health("a").state is TenantState.READY
        assert (await api_a.instance(started.instance)).state == "active"
    finally:
        await serving.stop()
        await nc_a.close()
        await nc_b.close()
    assert serving.running == {}


async def test_natsflow_engine_serves_the_tenants_of_its_credentials_directory(
    operator_server: OperatorServer, platform: dict[str, TenantAccount], tmp_path: Path
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "a.creds").write_text(platform["a"].user("platform").creds)
    env = {**os.environ, CREDENTIALS_DIR_ENV: str(creds), "NATS_URL": operator_server.url}
    env.pop("NATSFLOW_HEALTH_PORT", None)
    cli = [sys.executable, "-c", "from natsflow.cli import main; main()"]
    with (tmp_path / "engine.log").open("w") as log:
        proc = await asyncio.create_subprocess_exec(*cli, "engine", "--health-port", "0", env=env, stderr=log)
    nc_a, api_a = await _api(operator_server, platform["a"], "a")
    nc_b, api_b = await _api(operator_server, platform["b"], "b")
    try:
        await api_answers(api_a, timeout=60)  # a child process on a loaded machine: a generous deadline
        (deployed,) = await api_a.deploy(SERVICE_MODEL)
        assert (await api_a.start("charge", {"amount": 1}, wait=True)).created
        (creds / "b.creds").write_text(platform["b"].user("platform").creds)  # picked up by the poll
        await api_answers(api_b, timeout=60)
        assert await api_b.workflows() == [] and deployed.version == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout=20)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
        await nc_a.close()
        await nc_b.close()
    assert code == 0, (tmp_path / "engine.log").read_text()[-2000:]
