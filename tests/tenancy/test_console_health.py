"""``natsflow console --tenant-credentials-dir``: /healthz and /readyz say how each tenant's
connection is, a tenant whose user was revoked is unhealthy alone (body and metric), and the
console is unready only when no listed tenant is connected."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from natsflow_console import Console, ConsoleSettings
from natsflow_console.auth import parse_users
from natsflow_engine.accounts import TenantAccount
from natsflow_engine.accounts.connections import ConnectionSettings
from natsflow_engine.accounts.directory import TenantServing
from prometheus_client import CollectorRegistry
from tenancy_kit import OperatorServer

FAST = ConnectionSettings(
    initial_backoff=0.1, max_backoff=0.5, connect_timeout=3.0, reconnect_attempts=2, reconnect_wait=0.1
)
DEADLINE = 30.0
USERS = parse_users(
    json.dumps({"users": [{"name": "alice", "tenant": "a", "token": "alice-token-0123456789"}]})
)


async def _until(
    probe: Callable[[], Any], check: Callable[[Any], bool], what: str, timeout: float = DEADLINE
) -> Any:
    """Poll ``await probe()`` until ``check`` holds (a correctness deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s; last {value!r}")
        await asyncio.sleep(0.05)


async def _revoke(operator_server: OperatorServer, account: TenantAccount, user: str) -> None:
    account.revoke(user)
    await operator_server.push(account)


async def test_console_health_reports_each_tenant_and_survives_one_revoked(
    operator_server: OperatorServer, tmp_path: Path
) -> None:
    a, b = await operator_server.tenant("a"), await operator_server.tenant("b")
    user_a, user_b = a.user("console"), b.user("console")
    (tmp_path / "a.creds").write_text(user_a.creds)
    (tmp_path / "b.creds").write_text(user_b.creds)
    registry = CollectorRegistry()
    serving = await TenantServing(
        tmp_path, operator_server.url, lambda tenant, nc: [], interval=0.1, settings=FAST, registry=registry
    ).start()
    console = await Console(
        None, USERS, ConsoleSettings(port=0), tenants=serving.connections, registry=registry
    ).start()
    try:
        async with aiohttp.ClientSession() as http:

            async def get(path: str) -> tuple[int, dict[str, Any]]:
                async with http.get(f"{console.url}{path}") as response:
                    return response.status, await response.json()

            async def up(tenant: str) -> str:
                async with http.get(f"{console.url}/metrics") as response:
                    text = await response.text()
                line = [
                    x
                    for x in text.splitlines()
                    if x.startswith(f'natsflow_tenant_connection_up{{tenant="{tenant}"}}')
                ]
                return line[0].split()[-1] if line else "absent"

            status, body = await _until(
                lambda: get("/readyz"), lambda r: r[1]["ready"] == ["a", "b"], "both ready"
            )
            assert status == 200 and body["unhealthy"] == []
            assert body["tenants"] == {"a": {"state": "ready"}, "b": {"state": "ready"}}

            # a's user revoked: the server closes its connection and refuses it; a alone is unhealthy
            await _revoke(operator_server, a, user_a.public)
            status, body = await _until(
                lambda: get("/readyz"),
                lambda r: r[1]["tenants"]["a"]["state"] != "ready" and r[1]["tenants"]["a"]["failures"] >= 1,
                "a unhealthy",
            )
            assert status == 200, body
            assert body["ready"] == ["b"] and body["unhealthy"] == ["a"]
            error = body["tenants"]["a"]["error"].lower()  # the close, or the refused reconnect
            assert "revoked" in error or "authorization" in error, body
            assert await up("a") == "0.0" and await up("b") == "1.0"
            status, alive = await get("/healthz")
            assert status == 200 and alive["unhealthy"] == ["a"]
            async with http.get(  # alice (tenant a) is told her tenant is not connected
                f"{console.url}/api/instances", headers={"Authorization": "Bearer alice-token-0123456789"}
            ) as response:
                assert response.status == 503, await response.text()

            # b revoked too: nothing it should serve is connected, so not ready, yet alive
            await _revoke(operator_server, b, user_b.public)
            status, body = await _until(lambda: get("/readyz"), lambda r: r[0] == 503, "unready")
            assert body["ready"] == [] and body["unhealthy"] == ["a", "b"]
            assert (await get("/healthz"))[0] == 200

            # a's file removed: a is no longer served; b's user allowed again: b serves again
            (tmp_path / "a.creds").unlink()
            b.revocations.clear()
            await operator_server.push(b)
            status, body = await _until(
                lambda: get("/readyz"),
                lambda r: r[1]["ready"] == ["b"] and "a" not in r[1]["tenants"],
                "b back",
            )
            assert status == 200 and body["unhealthy"] == []
            assert await up("a") == "absent"
    finally:
        await console.stop()
        await serving.stop()


async def test_natsflow_console_serves_tenant_health_and_metrics(
    operator_server: OperatorServer, tmp_path: Path
) -> None:
    """``natsflow console --tenant-credentials-dir`` as a process: the same health body, and
    the tenant connection gauge on its /metrics."""
    a = await operator_server.tenant("a")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "a.creds").write_text(a.user("console").creds)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    users = json.dumps({"users": [{"name": "alice", "tenant": "a", "token": "alice-token-0123456789"}]})
    env = {**os.environ, "NATS_URL": operator_server.url, "NATSFLOW_CONSOLE_USERS": users}
    cli = [sys.executable, "-c", "from natsflow.cli import main; main()"]
    args = ["console", "--port", str(port), "--tenant-credentials-dir", str(creds)]
    with (tmp_path / "console.log").open("w") as log:
        proc = await asyncio.create_subprocess_exec(*cli, *args, env=env, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> tuple[int, Any]:
                try:
                    async with http.get(f"{url}/readyz") as response:
                        return response.status, await response.json()
                except aiohttp.ClientConnectionError:  # not listening yet
                    return 0, None

            # a child process on a loaded machine: a generous deadline
            _, body = await _until(ready, lambda r: r[0] == 200 and r[1]["ready"] == ["a"], "ready", 60.0)
            assert body["tenants"] == {"a": {"state": "ready"}}
            async with http.get(f"{url}/metrics") as response:
                assert 'natsflow_tenant_connection_up{tenant="a"} 1.0' in await response.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout=20)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
    assert code == 0, (tmp_path / "console.log").read_text()[-2000:]
