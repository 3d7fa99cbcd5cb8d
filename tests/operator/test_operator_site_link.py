"""A remote site end to end with the user the operator mints for it: a hub nats-server in
operator mode (JetStream domain ``hub``, a leaf node listener) serves the operator on kmock and an
engine with tenant a's platform credentials; a leaf nats-server at the site connects with the
``hub.creds`` of a's site Secret. A worker at the leaf pays a job of the engine at the hub, an
application at the site publishes into a stream at the hub, and the link carries nothing else:
no KV reads or writes, no commands but results, no replies meant for others, nothing of
tenant b."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import nats
import pytest
from nats.aio.client import Client, RawCredentials
from nats.js.errors import KeyNotFoundError
from natsflow_engine import layout
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.engine import Engine
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.store import publish_command
from natsflow_engine.worker import Job, Worker
from natsflow_operator.context import OperatorConfig
from natsflow_operator.sites import CREDS_KEY, INBOX_KEY
from natsflow_operator.tenancy import TenancyConfig
from tenants_kit import (
    DEADLINE,
    PLATFORM,
    OperatorMode,
    create_tenant,
    free_port,
    operator_server,
    platform_creds,
    ready,
    secret_value,
    site_secret,
    start,
    td_ready,
    tenancy_config,
)
from test_operator_workflow import bpmn

SITE = {"name": "dc1", "taskTypes": ["work"], "publish": ["site.orders"]}


@pytest.fixture(scope="module")
def link() -> int:
    """The hub's leaf node port (taken when the hub starts, not at collection)."""
    return free_port()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, link: int) -> Iterator[OperatorMode]:
    yield from operator_server(
        tmp_path_factory, f"jetstream {{ domain: hub }}\nleafnodes {{ host: 127.0.0.1, port: {link} }}\n"
    )


@pytest.fixture
def operator_config(k8s: kmock.KubernetesEmulator, hub: OperatorMode) -> OperatorConfig:
    return tenancy_config(k8s, hub, TenancyConfig(namespace=PLATFORM, user_ttl=600.0, renew_before=200.0))


async def _answer(running: Any, call: Any) -> Any:
    """What ``call()`` returns once the leaf link carries it (nats errors until then)."""

    async def probe() -> Any:
        try:
            return await call()
        except nats.errors.Error:
            return None

    return await running.eventually(probe, timeout=DEADLINE)


async def _refused(nc: Client, subject: str, payload: bytes = b"{}") -> bool:
    """Whether the leaf has no way to ``subject``: the hub forwarded no interest for it."""
    try:
        await nc.request(subject, payload, timeout=DEADLINE)
    except nats.errors.NoRespondersError:
        return True
    return False


async def test_a_worker_at_a_site_runs_its_tenants_jobs_over_the_minted_user(
    running: Any, hub: OperatorMode, link: int, unique: str, tmp_path: Path
) -> None:
    a, b = f"{unique}a", f"{unique}b"
    await start(running, hub, a, sites=[SITE])
    await create_tenant(running.api.client, b, {})
    await ready(running, b)
    # the operator's part at the hub: the job consumer and the process in a's account
    await running.api.create("TaskDefinition", a, "work", {"taskType": "work"})
    await running.api.create("Workflow", a, "charge", {"bpmn": bpmn(pid="charge")})
    await td_ready(running, a, "work")
    secret = await site_secret(running, a, "dc1")
    creds, inbox = tmp_path / "hub.creds", str(secret_value(secret, INBOX_KEY))
    creds.write_text(str(secret_value(secret, CREDS_KEY)))
    platform_a, platform_b = (
        await platform_creds(running.api.client, a),
        await platform_creds(running.api.client, b),
    )
    hub_a = await nats.connect(hub.url, user_credentials=RawCredentials(str(platform_a)))
    hub_b = await nats.connect(hub.url, user_credentials=RawCredentials(str(platform_b)))
    leaf_conf = (
        f'leafnodes {{ remotes: [ {{ urls: ["nats-leaf://127.0.0.1:{link}"], credentials: "{creds}" }} ] }}\n'
    )
    engine = await Engine(hub_a, tenant=a).start()
    try:
        with EmbeddedNatsServer(config=leaf_conf, jetstream=False) as leaf:
            site = await nats.connect(leaf.url, inbox_prefix=inbox)
            worker = Worker(tenant=a, nc=site, js_domain="hub")

            @worker.task("work")
            async def work(job: Job) -> dict[str, Any]:
                return {"paid_at": "site", "amount": job.variables["amount"]}

            try:
                consumer = layout.job_consumer(a, "work")
                await _answer(
                    running, lambda: site.jetstream(domain="hub").consumer_info("NF_JOBS", consumer)
                )
                await worker.start()
                await _site_pays_a_job(running, hub_a, a)
                await _site_publishes_for_a_trigger(running, hub_a, site)
                await _nothing_else_crosses(running, hub_a, hub_b, site, a, inbox)
            finally:
                await worker.stop(timeout=2.0)
                await site.close()
    finally:
        await engine.stop(timeout=2.0)
        await hub_a.close()
        await hub_b.close()


async def _site_pays_a_job(running: Any, hub_a: Client, a: str) -> None:
    js = hub_a.jetstream()
    iid = r.new_id()
    await publish_command(
        js, r.Launch(id=f"l.{iid}", tenant=a, instance=iid, process_id="charge", variables={"amount": 5})
    )
    kv = await js.key_value(layout.BUCKET_INSTANCES)

    async def completed() -> r.InstanceState | None:
        try:
            state = r.decode_state((await kv.get(layout.instance_key(a, iid))).value or b"")
        except KeyNotFoundError:
            return None
        return state if state.state == "completed" else None

    state = await running.eventually(completed, timeout=60.0)
    assert state.root_vars() == {"amount": 5, "paid_at": "site"}


async def _site_publishes_for_a_trigger(running: Any, hub_a: Client, site: Client) -> None:
    # a capture stream at the hub as a Trigger on site.orders has; the site's granted subject is
    # stored and acknowledged across the link, another subject is not carried
    await hub_a.jetstream().add_stream(name="ORDERS", subjects=["site.orders", "other.orders"])
    site_js = site.jetstream(domain="hub")
    ack = await _answer(running, lambda: site_js.publish("site.orders", b'{"id": "o-1"}'))
    assert (ack.stream, ack.domain) == ("ORDERS", "hub")
    assert await _refused(site, "other.orders")
    assert (await hub_a.jetstream().stream_info("ORDERS")).state.messages == 1


async def _nothing_else_crosses(
    running: Any, hub_a: Client, hub_b: Client, site: Client, a: str, inbox: str
) -> None:
    key = layout.trigger_key(a, "planted")
    for subject, payload in (
        ("$JS.hub.API.STREAM.MSG.GET.KV_nf_instances", b'{"last_by_subj": "$KV.nf_instances.>"}'),
        ("$JS.hub.API.DIRECT.GET.KV_nf_workflows", b'{"last_by_subj": "$KV.nf_workflows.>"}'),
        ("$JS.hub.API.STREAM.INFO.NF_HIST", b""),
        ("$JS.hub.API.CONSUMER.CREATE.NF_HIST", b"{}"),
        ("$JS.hub.API.STREAM.LIST", b"{}"),
        (f"$KV.nf_triggers.{key}", b"{}"),  # a KV write into a bucket it has no business with
        (f"nf.cmd.{a}.{r.new_id()}", b"{}"),  # a command that is not a result
    ):
        assert await _refused(site, subject, payload), subject
    with pytest.raises(KeyNotFoundError):
        await (await hub_a.jetstream().key_value(layout.BUCKET_TRIGGERS)).get(key)
    # the site listens on everything; what reaches it is only its own inbox's traffic
    everything = await site.subscribe(">")
    marker = await site.subscribe(f"{inbox}.marker")
    await site.flush()
    await hub_b.jetstream().add_stream(name="SECRETS", subjects=["b.secret"])
    await hub_b.jetstream().publish("b.secret", b"tenant b's")  # another account
    await hub_a.publish("nf.hist.x", b"history")  # the tenant's own traffic outside the grants
    await hub_a.jetstream().account_info()  # a reply to the platform's inbox
    await hub_a.flush()

    async def marked() -> bool:  # published after the rest: the link keeps its order
        await hub_a.publish(f"{inbox}.marker", b"end")
        try:
            await marker.next_msg(timeout=0.5)
        except nats.errors.TimeoutError:
            return False
        return True

    await running.eventually(marked, timeout=DEADLINE)
    seen = set()
    while True:
        try:
            seen.add((await everything.next_msg(timeout=0.01)).subject)
        except nats.errors.TimeoutError:
            break
    assert seen <= {f"{inbox}.marker"}, seen
