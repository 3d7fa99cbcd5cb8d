"""One replica serving two tenant accounts from a credentials directory (an engine, API server
and trigger server per tenant, as ``natsflow engine --tenant-credentials-dir`` runs them):
tenant a's credentials reach nothing of tenant b through the API, history, watch or inboxes,
a's exhausted JetStream quota leaves b working, and the console acts for each user with their
tenant's connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from nats.aio.client import Client, RawCredentials
from nats.aio.msg import Msg
from nats.js.errors import APIError
from natsflow_console import Console, ConsoleSettings
from natsflow_console.auth import parse_users
from natsflow_engine import layout
from natsflow_engine.accounts import AccountLimits, TenantAccount
from natsflow_engine.accounts.connections import ConnectionSettings
from natsflow_engine.accounts.directory import TenantServing
from natsflow_engine.accounts.permissions import worker_inbox_prefix, worker_permissions
from natsflow_engine.api.client import ApiClient
from natsflow_engine.errors import ConnectionFailedError, NatsflowError, NotFoundError
from natsflow_engine.observability import Metrics
from natsflow_engine.runtime.setup import ensure_job_consumer
from natsflow_engine.worker import Job, Worker
from tenancy_kit import SERVICE_MODEL, OperatorServer, api_answers

from natsflow.cli.tenants import engine_services

FAST = ConnectionSettings(initial_backoff=0.2, max_backoff=1.0, connect_timeout=3.0)


@dataclass
class Served:
    serving: TenantServing
    accounts: dict[str, TenantAccount]
    clients: dict[str, Client]

    def api(self, tenant: str, *, as_tenant: str | None = None, timeout: float = 10.0) -> ApiClient:
        """An API client on ``tenant``'s account connection, acting for ``as_tenant``."""
        return ApiClient(self.clients[tenant], as_tenant or tenant, timeout=timeout)

    async def worker(self, url: str, tenant: str) -> tuple[Worker, Client]:
        """A worker of task type ``pay`` with the narrowest worker credentials (its consumer
        made first, as the operator does for a TaskDefinition)."""
        await ensure_job_consumer(self.clients[tenant].jetstream(), tenant, "pay")
        user = self.accounts[tenant].user("worker-pay", worker_permissions(tenant, "pay"))
        nc = await nats.connect(
            url, user_credentials=RawCredentials(user.creds), inbox_prefix=worker_inbox_prefix(tenant, "pay")
        )
        worker = Worker(tenant=tenant, nc=nc)

        @worker.task("pay")
        async def pay(job: Job) -> dict[str, Any]:
            return {"paid": job.variables["amount"], "secret": f"{tenant}-card-4242"}

        return await worker.start(), nc


async def _serve(operator_server: OperatorServer, tmp_path: Path, limits: AccountLimits | None = None) -> Served:
    accounts = {t: await operator_server.tenant(t, limits) for t in ("a", "b")}
    for tenant, account in accounts.items():
        (tmp_path / f"{tenant}.creds").write_text(account.user("platform").creds)
    serving = TenantServing(tmp_path, operator_server.url, engine_services(Metrics(), 1), settings=FAST)
    await serving.start()
    clients = {}
    for tenant, account in accounts.items():
        await serving.connections.wait_ready(tenant, timeout=30)
        clients[tenant] = await nats.connect(
            operator_server.url, user_credentials=RawCredentials(account.user("someone").creds)
        )
    served = Served(serving, accounts, clients)
    for tenant in accounts:
        await api_answers(served.api(tenant))
        await served.api(tenant).deploy(SERVICE_MODEL)
    return served


@pytest.fixture
async def served(operator_server: OperatorServer, tmp_path: Path) -> AsyncIterator[Served]:
    served = await _serve(operator_server, tmp_path)
    try:
        yield served
    finally:
        await served.serving.stop()
        for nc in served.clients.values():
            await nc.close()


async def _until(api: ApiClient, iid: str, state: str | None = None, element: str | None = None) -> None:
    """Poll the API until the instance is in ``state`` or waits at ``element`` (a correctness
    deadline of 30 s)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        view = await api.instance(iid)
        if (state is None or view.state == state) and (
            element is None or any(e.element_id == element for e in view.active_elements)
        ):
            return
        assert asyncio.get_running_loop().time() < deadline, view
        await asyncio.sleep(0.02)


async def _run_to_approval(served: Served, url: str, tenant: str) -> str:
    worker, nc = await served.worker(url, tenant)
    try:
        api = served.api(tenant)
        started = await api.start("charge", {"amount": 7}, wait=True)  # instance-get finds it at once
        await _until(api, started.instance, element="approve")
        return started.instance
    finally:
        await worker.stop(timeout=2.0)
        await nc.close()


async def test_a_reaches_nothing_of_b_through_api_history_watch_or_inboxes(
    operator_server: OperatorServer, served: Served
) -> None:
    spy = served.clients["a"]  # a user of a's account without any permission limit
    seen: list[Msg] = []

    async def record(msg: Msg) -> None:
        seen.append(msg)

    await spy.subscribe(">", cb=record)
    await spy.flush(timeout=5)
    iid_b = await _run_to_approval(served, operator_server.url, "b")
    api_b = served.api("b")
    view = await api_b.instance(iid_b)
    assert view.variables["secret"] == "b-card-4242"
    assert (await api_b.history(iid_b)).records
    (task,) = await api_b.tasks(iid_b)
    iid_a = await _run_to_approval(served, operator_server.url, "a")
    await spy.flush(timeout=5)

    # the spy heard a's traffic (API replies on inboxes included), nothing of b's
    assert any(m.subject.startswith("_INBOX.") for m in seen) and any(iid_a in m.subject for m in seen)
    assert not [m.subject for m in seen if iid_b in m.subject or b"b-card" in m.data or iid_b.encode() in m.data]

    # b's API is not reachable from a's account, whatever tenant a request names (only the spy's
    # own `>` subscription hears the request)
    with pytest.raises(ConnectionFailedError, match="did not answer"):
        await served.api("a", as_tenant="b", timeout=2.0).instance(iid_b)
    api_a = served.api("a")
    for read in (api_a.instance(iid_b), api_a.history(iid_b), api_a.cancel(iid_b), api_a.complete_task(task.id)):
        with pytest.raises(NotFoundError):
            await read
    with pytest.raises(NotFoundError):  # watch
        async for _ in api_a.watch(iid_b):
            pass
    assert [i.id for i in (await api_a.instances()).instances] == [iid_a]

    # b is untouched and goes on
    await api_b.complete_task(task.id)
    await _until(api_b, iid_b, state="completed")


async def test_a_quota_exhausted_leaves_b_working(operator_server: OperatorServer, tmp_path: Path) -> None:
    served = await _serve(operator_server, tmp_path, AccountLimits(disk=2 * 1024 * 1024, memory=1024 * 1024))
    try:
        js_a = served.clients["a"].jetstream()
        for size in (64 * 1024, 4096, 256, 16):  # fill a's 2 MiB to the last bytes: a's own history stream
            with pytest.raises(APIError, match=r"resource limits exceeded|insufficient resources"):
                for n in range(1024):
                    await js_a.publish(layout.history_subject("a", f"fill{n}"), b"x" * size)
        with pytest.raises(NatsflowError, match=r"insufficient resources|resource limits"):  # cannot be stored
            await served.api("a").start("charge", {"amount": 1}, wait=True)
        # b, served by the same replica, runs an instance to its end
        iid_b = await _run_to_approval(served, operator_server.url, "b")
        (task,) = await served.api("b").tasks(iid_b)
        await served.api("b").complete_task(task.id)
        await _until(served.api("b"), iid_b, state="completed")
    finally:
        await served.serving.stop()
        for nc in served.clients.values():
            await nc.close()


async def test_the_console_acts_for_each_user_with_their_tenants_connection(
    operator_server: OperatorServer, served: Served, tmp_path: Path
) -> None:
    iid_a = (await served.api("a").start("charge", {"amount": 1}, wait=True)).instance
    iid_b = (await served.api("b").start("charge", {"amount": 2}, wait=True)).instance
    users = parse_users(
        json.dumps(
            {
                "users": [
                    {"name": "alice", "tenant": "a", "token": "alice-token-0123456789"},
                    {"name": "bob", "tenant": "b", "token": "bob-token-0123456789"},
                    {"name": "carol", "tenant": "c", "token": "carol-token-0123456789"},
                ]
            }
        )
    )
    # the console's own connections, as `natsflow console --tenant-credentials-dir` opens them
    connections = await TenantServing(tmp_path, operator_server.url, lambda tenant, nc: [], settings=FAST).start()
    console = await Console(None, users, ConsoleSettings(port=0), tenants=connections.connections).start()
    try:
        for tenant in ("a", "b"):
            await connections.connections.wait_ready(tenant, timeout=30)
        async with aiohttp.ClientSession() as http:

            async def get(user: str, path: str) -> tuple[int, Any]:
                headers = {"Authorization": f"Bearer {user}-token-0123456789"}
                async with http.get(f"{console.url}{path}", headers=headers) as response:
                    return response.status, await response.json()

            status, body = await get("alice", "/api/instances")
            assert status == 200 and [i["id"] for i in body["instances"]] == [iid_a]
            status, body = await get("bob", "/api/instances")
            assert status == 200 and [i["id"] for i in body["instances"]] == [iid_b]
            assert (await get("alice", f"/api/instances/{iid_b}"))[0] == 404
            status, body = await get("carol", "/api/instances")  # no credentials for c
            assert status == 404 and "not served" in body["error"]["message"]
    finally:
        await console.stop()
        await connections.stop()
