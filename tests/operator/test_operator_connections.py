"""NATS connections of the operator: rotated Secrets, a stop during setup, missing permissions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import kmock
import kopf
import pytest
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_operator.connections import NatsPermissionError, NatsPool, NatsTarget
from natsflow_operator.context import OperatorConfig, OperatorContext
from natsflow_operator.models import NatsRef

# A user that may connect but not use JetStream's API: natsflow's setup is refused.
RESTRICTED = """
authorization {
  users = [
    {user: ro, password: ro, permissions: {publish: {deny: ["$JS.API.>"]}}}
  ]
}
"""


@pytest.fixture(scope="module")
def restricted_server() -> Iterator[EmbeddedNatsServer]:
    with EmbeddedNatsServer(config=RESTRICTED) as server:
        yield server


def _restricted_url(server: EmbeddedNatsServer) -> str:
    return f"nats://ro:ro@127.0.0.1:{server.port}"


@pytest.fixture
async def ctx(k8s: kmock.KubernetesEmulator, nats_url: str) -> AsyncIterator[OperatorContext]:
    context = OperatorContext(OperatorConfig(nats_url=nats_url))
    context.kube.set_credentials(kopf.ConnectionInfo(server=str(k8s.url)))
    yield context
    await context.close()


async def _secret(
    ctx: OperatorContext, namespace: str, name: str, url: str, *, replace: bool = False
) -> None:
    path = f"/api/v1/namespaces/{namespace}/secrets"
    if replace:
        await ctx.kube.merge_patch(f"{path}/{name}", {"stringData": {"url": url}})
    else:
        await ctx.kube.create(
            path, {"metadata": {"name": name, "namespace": namespace}, "stringData": {"url": url}}
        )


async def test_a_rotated_secret_closes_the_old_connection(
    ctx: OperatorContext, nats_url: str, unique: str
) -> None:
    port = nats_url.rsplit(":", 1)[1]
    old_url, new_url = f"nats://127.0.0.1:{port}", f"nats://localhost:{port}"
    await _secret(ctx, unique, "tenant-nats", old_url)
    await _secret(ctx, unique, "shared", old_url)
    first, _ = await ctx.nats_for(unique, NatsRef(name="tenant-nats"))
    await ctx.nats_for(unique, NatsRef(name="shared"))

    await _secret(ctx, unique, "tenant-nats", new_url, replace=True)
    second, _ = await ctx.nats_for(unique, NatsRef(name="tenant-nats"))
    assert second is not first and not first.nc.is_closed  # "shared" still uses the old content

    await _secret(ctx, unique, "shared", new_url, replace=True)
    assert (await ctx.nats_for(unique, NatsRef(name="shared")))[0] is second
    assert first.nc.is_closed
    assert ctx.pool.open_targets() == [NatsTarget(new_url)]


async def test_a_stop_during_a_failing_setup_leaves_no_task(restricted_server: EmbeddedNatsServer) -> None:
    before = asyncio.all_tasks()
    pool = NatsPool(connect_timeout=30.0)  # the setup would wait 30 s for JetStream's answers
    getting = asyncio.create_task(pool.get(NatsTarget(_restricted_url(restricted_server))))

    async def client_running() -> bool:  # nats-py's reader, flusher and pinger
        return len(asyncio.all_tasks() - before) > 1

    deadline = asyncio.get_running_loop().time() + 10
    while not await client_running():
        assert asyncio.get_running_loop().time() < deadline, "the client never connected"
        await asyncio.sleep(0.01)
    await pool.close()  # the operator stops...
    getting.cancel()  # ...and cancels its handlers
    with pytest.raises((asyncio.CancelledError, Exception)):
        await getting

    me = asyncio.current_task()

    async def leftovers() -> set[asyncio.Task[Any]]:
        return {t for t in asyncio.all_tasks() - before if t is not me}

    deadline = asyncio.get_running_loop().time() + 5
    while left := await leftovers():
        assert asyncio.get_running_loop().time() < deadline, f"orphan tasks: {left}"
        await asyncio.sleep(0.01)


async def test_missing_nats_permissions_are_reported_as_such(restricted_server: EmbeddedNatsServer) -> None:
    pool = NatsPool(connect_timeout=1.0)
    try:
        with pytest.raises(NatsPermissionError, match=r"(?i)permissions violation"):
            await pool.get(NatsTarget(_restricted_url(restricted_server)))
    finally:
        await pool.close()


async def test_permission_denied_condition(
    running: Any, restricted_server: EmbeddedNatsServer, unique: str
) -> None:
    api, tenant = running.api, unique
    await api.create_core(
        "secrets", tenant, "ro", {"stringData": {"url": _restricted_url(restricted_server)}}
    )
    await api.create("TaskDefinition", tenant, "t", {"taskType": "t", "natsRef": {"name": "ro"}})

    async def denied() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "t")
        return obj if running.condition(obj, "Synced").get("reason") == "NatsPermissionDenied" else None

    obj = await running.eventually(denied, timeout=30)
    assert "$js.api" in running.condition(obj, "Synced")["message"].lower()
    assert running.condition(obj, "Stalled")["reason"] == "NatsPermissionDenied"


async def test_an_api_permission_error_is_forbidden_not_nats(
    running: Any, k8s: kmock.KubernetesEmulator, unique: str
) -> None:
    api, tenant = running.api, unique
    forbidden = {"kind": "Status", "code": 403, "message": 'secrets "locked" is forbidden'}
    k8s[f"GET /api/v1/namespaces/{tenant}/secrets/locked"] << 403 << forbidden
    await api.create("TaskDefinition", tenant, "t", {"taskType": "t", "natsRef": {"name": "locked"}})

    async def refused() -> dict[str, Any] | None:
        obj = await api.get("TaskDefinition", tenant, "t")
        return obj if running.condition(obj, "Synced").get("reason") == "Forbidden" else None

    obj = await running.eventually(refused)
    assert "forbidden" in running.condition(obj, "Synced")["message"]
    assert running.condition(obj, "Stalled")["reason"] == "Forbidden"
