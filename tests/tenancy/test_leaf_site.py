"""A remote site over a leaf node: a hub nats-server with JetStream (domain ``hub``) runs the
engine and the trigger server of tenant ``shop``; a leaf nats-server without JetStream at the
site maps its local account onto ``shop``'s account on the hub. A worker connected to the leaf
runs the tenant's jobs, messages published at the site start instances through a Trigger, and
jobs created while the leaf link is down wait in the hub's work queue until it is back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from natsflow_engine import catalog, layout
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import deploy_definitions
from natsflow_engine.runtime.engine import Engine
from natsflow_engine.runtime.setup import JobConsumerSettings, ensure_job_consumer, ensure_layout
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.triggers.server import TriggerServer
from natsflow_engine.worker import Job, Worker
from tenancy_kit import SERVICE_MODEL, TenantView, free_port

HUB = """
jetstream { domain: hub }
leafnodes { host: 127.0.0.1, port: %d }
accounts {
  shop: { jetstream: enabled, users: [{user: platform, password: p}, {user: site, password: s}] }
}
"""
LEAF = """
accounts { LOCAL: { users: [{user: app, password: a}] } }
leafnodes { remotes: [ { urls: ["nats-leaf://site:s@127.0.0.1:%d"], account: LOCAL } ] }
"""


# The deadlines of one test (link 30 s, queued 30 s, paid 60 s) add up to the suite's
# per-test timeout of 120 s: under heavy load that timeout ended a slow run at an arbitrary
# point (once in teardown) instead of the deadline that failed, with its message.
pytestmark = pytest.mark.timeout(300)


@dataclass
class Sites:
    hub: EmbeddedNatsServer
    leaf: EmbeddedNatsServer
    platform: Client
    """On the hub: engine and trigger server of tenant shop."""

    def leaf_url(self) -> str:
        return f"nats://app:a@{self.leaf.url.removeprefix('nats://')}"


@pytest.fixture
async def sites() -> AsyncIterator[Sites]:
    link = free_port()
    with (
        EmbeddedNatsServer(config=HUB % link) as hub,
        EmbeddedNatsServer(config=LEAF % link, jetstream=False) as leaf,
    ):
        platform = await nats.connect(f"nats://platform:p@{hub.url.removeprefix('nats://')}")
        js = platform.jetstream()
        await ensure_layout(js)
        await deploy_definitions(await js.key_value(layout.BUCKET_WORKFLOWS), "shop", SERVICE_MODEL)
        # the operator's part for a TaskDefinition; a short ack wait: a job handed to a pull
        # request of the site just before the link went down is delivered again soon
        await ensure_job_consumer(js, "shop", "pay", JobConsumerSettings(timeout=5.0))
        engine = await Engine(platform, tenant="shop").start()
        try:
            yield Sites(hub, leaf, platform)
        finally:
            await engine.stop(timeout=2.0)
            await platform.close()


async def _eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 30.0) -> Any:
    """Retry ``check`` until it returns without raising (a correctness deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await check()
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{what}: {exc!r}") from exc
            await asyncio.sleep(0.1)


async def _site_worker(sites: Sites, paid: list[int]) -> tuple[Worker, Client]:
    nc = await nats.connect(sites.leaf_url(), max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    # the leaf link comes up a moment after both servers: wait until the hub's JetStream answers
    await _eventually(lambda: nc.jetstream(domain="hub").account_info(), "hub JetStream over the leaf link")
    worker = Worker(tenant="shop", nc=nc, js_domain="hub")

    @worker.task("pay")
    async def pay(job: Job) -> dict[str, Any]:
        paid.append(job.variables["amount"])
        return {"paid_at": "site"}

    await worker.start()
    return worker, nc


async def test_a_worker_at_the_site_runs_the_tenants_jobs_and_a_trigger_takes_site_messages(
    sites: Sites,
) -> None:
    paid: list[int] = []
    worker, site = await _site_worker(sites, paid)
    shop = TenantView("shop", sites.platform)
    record = catalog.TriggerRecord(
        tenant="shop",
        name="site-orders",
        subject="site.orders",
        stream="",
        consumer=catalog.trigger_consumer("shop", "site-orders"),
        process_id="charge",
        variables={"amount": "payload.amount"},
        idempotency_expression="payload.id",
    )
    kv = await sites.platform.jetstream().key_value(layout.BUCKET_TRIGGERS)
    await kv.put(layout.trigger_key("shop", "site-orders"), catalog.encode_record(record))
    triggers = await TriggerServer(sites.platform, tenant="shop").start()
    try:
        await triggers.wait_ready("shop", "site-orders", timeout=30)
        # an application at the site publishes an order; JetStream at the hub stores it (the
        # acknowledgement crosses the leaf link), the trigger launches, the site's worker pays
        site_js = site.jetstream(domain="hub")
        ack = await _eventually(
            lambda: site_js.publish("site.orders", json.dumps({"id": "o-1", "amount": 12}).encode()),
            "publishing at the site into the hub's capture stream",
        )
        assert ack.domain == "hub"
        iid = layout.idempotent_instance_id("shop", "charge", "o-1")
        state = await shop.wait_for(iid, TenantView.waits_at("approve"))
        assert state.root_vars() == {"amount": 12, "paid_at": "site"} and paid == [12]
    finally:
        await triggers.stop()
        await worker.stop(timeout=2.0)
        await site.close()


async def test_jobs_wait_at_the_hub_while_the_leaf_link_is_down(sites: Sites) -> None:
    paid: list[int] = []
    worker, site = await _site_worker(sites, paid)
    shop = TenantView("shop", sites.platform)
    try:
        sites.leaf.stop()  # the site is cut off (its server, and with it the link, is gone)
        iid = r.new_id()
        await shop.send(
            r.Launch(id=f"l.{iid}", tenant="shop", instance=iid, process_id="charge", variables={"amount": 3})
        )
        await shop.wait_for(iid, TenantView.waits_at("pay"))
        jobs = sites.platform.jetstream()

        async def queued() -> None:  # the job is in NF_JOBS at the hub (published after the step)
            info = await jobs.consumer_info(layout.STREAM_JOBS, layout.job_consumer("shop", "pay"))
            assert info.num_pending + info.num_ack_pending == 1, info

        await _eventually(queued, "the job queued at the hub")
        assert paid == []
        sites.leaf.start()  # same port: the worker reconnects, the link comes back
        try:
            state = await shop.wait_for(iid, TenantView.waits_at("approve"), timeout=60)
        except AssertionError as exc:  # say where the job is, for a failure under load
            info = await jobs.consumer_info(layout.STREAM_JOBS, layout.job_consumer("shop", "pay"))
            raise AssertionError(
                f"{exc}; job consumer: {info.num_pending} pending, {info.num_ack_pending} unacknowledged, "
                f"{info.num_waiting} pull requests waiting, delivered {info.delivered}; site connected: "
                f"{site.is_connected}, jobs in the site worker: {worker.inflight}"
            ) from exc
        assert state.root_vars()["paid_at"] == "site" and paid == [3]
    finally:
        await worker.stop(timeout=2.0)
        await site.close()
