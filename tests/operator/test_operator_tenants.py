"""Tenant resources on kmock against a real nats-server in operator mode (full resolver): an
account per tenant, platform and worker users, revocation and the deletion policies."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kmock
import nats
import pytest
from nats.aio.client import RawCredentials
from nats.js.errors import APIError, KeyNotFoundError, NotFoundError
from natsflow_engine import layout
from natsflow_engine.accounts import KeyKind, NKey, TenantAccount, decode_jwt, push_account
from natsflow_engine.accounts.permissions import worker_inbox_prefix
from natsflow_operator.context import OperatorConfig
from natsflow_operator.kube import paths
from natsflow_operator.tenancy import TenancyConfig, creds_claims
from tenants_kit import (
    DEADLINE,
    PLATFORM,
    OperatorMode,
    connect,
    connected,
    create_tenant,
    operator_mode,
    platform_creds,
    ready,
    refused,
    secret_value,
    seed_platform,
    start,
    td_ready,
    tenancy_config,
    tenant,
    worker_creds,
)

__all__ = ["operator_mode"]  # the module's server fixture


@pytest.fixture
def operator_config(k8s: kmock.KubernetesEmulator, operator_mode: OperatorMode) -> OperatorConfig:
    return tenancy_config(
        k8s, operator_mode, TenancyConfig(namespace=PLATFORM, user_ttl=600.0, renew_before=200.0)
    )


async def test_a_tenant_becomes_ready_with_its_account_and_platform_user(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a, b = f"{unique}a", f"{unique}b"
    account_a, account_b = await start(running, operator_mode, a, b)
    assert account_a != account_b
    NKey.check_public(account_a, KeyKind.ACCOUNT)
    obj = await tenant(running.api.client, a)
    assert running.condition(obj, "Synced")["reason"] == "AccountPushed"
    assert obj is not None and obj["status"]["credentialsExpireAt"]
    # the account's keys are kept in the platform namespace, the JWT pushed is signed by the
    # operator signing key (never by the operator's root key)
    keys = await running.api.client.get(paths.secret(PLATFORM, f"natsflow-account-{a}"))
    account_jwt = decode_jwt(str(secret_value(keys, "jwt")))
    assert account_jwt["sub"] == account_a and account_jwt["iss"] == operator_mode.trust.signing_key.public
    # the platform user of each tenant is in one Secret, a key per tenant, and works
    creds_a = await platform_creds(running.api.client, a)
    assert creds_a is not None
    assert creds_claims(creds_a)["nats"]["issuer_account"] == account_a
    assert 0 < creds_claims(creds_a)["exp"] - time.time() <= 600
    async with connected(operator_mode.url, creds_a) as conn:
        js = conn.nc.jetstream()
        await js.add_stream(name="MINE", subjects=["mine.>"])
        assert (await js.publish("mine.x", b"a's")).seq == 1
    creds_b = await platform_creds(running.api.client, b)
    assert creds_b is not None
    async with connected(operator_mode.url, creds_b) as conn:
        with pytest.raises(NotFoundError):  # another account: a's stream does not exist here
            await conn.nc.jetstream().stream_info("MINE")


async def test_worker_credentials_reach_their_own_consumer_and_nothing_of_the_other_tenant(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a, b = f"{unique}a", f"{unique}b"
    await start(running, operator_mode, a, b)
    api = running.api
    await api.create("TaskDefinition", a, "pay", {"taskType": "pay", "image": "shop/worker:1"})
    await api.create("TaskDefinition", b, "pay", {"taskType": "pay"})
    td = await td_ready(running, a, "pay")
    await td_ready(running, b, "pay")
    secret = await worker_creds(running, a, "pay")
    assert secret["metadata"]["ownerReferences"][0]["uid"] == td["metadata"]["uid"]
    creds = str(secret_value(secret, "creds"))
    # the worker Deployment mounts it, with the inbox prefix its user is limited to
    deployment = await api.deployment(a, "pay-worker")
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "nats-creds", "secret": {"secretName": "pay-worker-nats", "items": [
        {"key": "creds", "path": "nats.creds"}]}} in pod["volumes"]  # fmt: skip
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    prefix = worker_inbox_prefix(a, "pay")
    assert env["NATS_CREDS"] == "/etc/natsflow/nats/nats.creds" and env["NATS_INBOX_PREFIX"] == prefix

    # a job of tenant a, queued by the platform user of a
    platform_a = await platform_creds(api.client, a)
    assert platform_a is not None
    async with connected(operator_mode.url, platform_a) as engine:
        await engine.nc.jetstream().publish(layout.job_subject(a, "pay"), b"job-1")
    async with connected(operator_mode.url, creds, inbox_prefix=prefix) as worker:
        js = worker.nc.jetstream()
        sub = await js.pull_subscribe_bind(layout.job_consumer(a, "pay"), stream=layout.STREAM_JOBS)
        (job,) = await sub.fetch(1, timeout=10)
        assert job.data == b"job-1"
        await job.ack_sync()
        # nothing else: not tenant b's consumer or commands, not the KV, not _INBOX.>
        other = f"$JS.API.CONSUMER.MSG.NEXT.{layout.STREAM_JOBS}.{layout.job_consumer(b, 'pay')}"
        await worker.nc.publish(other, b"1")
        assert await worker.denied(other)
        await worker.nc.publish(f"nf.cmd.{b}.x", b"{}")
        assert await worker.denied(f"nf.cmd.{b}.x")
        await worker.nc.subscribe("_INBOX.>")
        assert await worker.denied("_INBOX.>")
        await worker.nc.publish(f"$KV.{layout.BUCKET_INSTANCES}.{a}.x", b"{}")
        assert await worker.denied(f"$KV.{layout.BUCKET_INSTANCES}.{a}.x")
    # b's job consumer lives in b's account only
    async with connected(operator_mode.url, platform_a) as engine:
        with pytest.raises(NotFoundError):
            await engine.nc.jetstream().consumer_info(layout.STREAM_JOBS, layout.job_consumer(b, "pay"))


async def test_deleting_a_taskdefinition_revokes_its_workers(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a = f"{unique}a"
    await start(running, operator_mode, a)
    await running.api.create("TaskDefinition", a, "ship", {"taskType": "ship"})
    await td_ready(running, a, "ship")
    creds = str(secret_value(await worker_creds(running, a, "ship"), "creds"))
    conn = await connect(operator_mode.url, creds, inbox_prefix=worker_inbox_prefix(a, "ship"))
    try:
        await running.api.delete("TaskDefinition", a, "ship")
        await asyncio.wait_for(conn.closed.wait(), DEADLINE)
    finally:
        await conn.nc.close()
    assert "Authorization Violation" in str(await refused(operator_mode.url, creds))

    async def secret_gone() -> bool:
        return await running.api.client.get(paths.secret(a, "ship-worker-nats")) is None

    await running.eventually(secret_gone, timeout=DEADLINE)


async def test_deleting_a_tenant_with_retain_revokes_its_users_and_keeps_its_data(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a = f"{unique}a"
    (account,) = await start(running, operator_mode, a)
    creds = await platform_creds(running.api.client, a)
    assert creds is not None
    conn = await connect(operator_mode.url, creds)
    try:
        js = conn.nc.jetstream()
        await js.add_stream(name="KEEP", subjects=["keep.>"])
        await js.publish("keep.one", b"kept")
        await running.api.client.delete(paths.tenant(a))
        await asyncio.wait_for(conn.closed.wait(), DEADLINE)
    finally:
        await conn.nc.close()
    assert "Authorization Violation" in str(await refused(operator_mode.url, creds))

    async def gone() -> bool:
        return await tenant(running.api.client, a) is None  # the finalizer is done

    await running.eventually(gone, timeout=DEADLINE)
    assert await platform_creds(running.api.client, a) is None
    # the same name again: the same account, its data still there, a new platform user
    await create_tenant(running.api.client, a, {})
    obj = await ready(running, a)
    assert obj["status"]["account"] == account
    fresh = await platform_creds(running.api.client, a)
    assert fresh is not None and fresh != creds
    async with connected(operator_mode.url, fresh) as again:
        msg = await again.nc.jetstream().get_last_msg("KEEP", "keep.one")
        assert msg.data == b"kept"


async def test_deleting_a_tenant_with_delete_removes_its_data_and_account(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a = f"{unique}a"
    (account,) = await start(running, operator_mode, a, deletionPolicy="Delete")
    keys = await running.api.client.get(paths.secret(PLATFORM, f"natsflow-account-{a}"))
    creds = await platform_creds(running.api.client, a)
    assert creds is not None
    conn = await connect(operator_mode.url, creds)
    try:
        js = conn.nc.jetstream()
        await js.add_stream(name="GONE", subjects=["gone.>"])
        await js.publish("gone.one", b"deleted with the tenant")
        await running.api.client.delete(paths.tenant(a))
        await asyncio.wait_for(conn.closed.wait(), DEADLINE)
    finally:
        await conn.nc.close()

    async def forgotten() -> bool:
        return await running.api.client.get(paths.secret(PLATFORM, f"natsflow-account-{a}")) is None

    await running.eventually(forgotten, timeout=DEADLINE)
    assert "Authorization Violation" in str(await refused(operator_mode.url, creds))
    # pushing the old account again (later than its deletion) shows no data came back with it
    old = TenantAccount(
        a,
        key=NKey.from_seed(str(secret_value(keys, "account-seed")), KeyKind.ACCOUNT),
        signing_key=NKey.from_seed(str(secret_value(keys, "signing-seed")), KeyKind.ACCOUNT),
    )
    assert old.public == account
    old.last_issued = int(time.time()) + 1
    nc = await nats.connect(
        operator_mode.url, user_credentials=RawCredentials(operator_mode.trust.system_user.creds)
    )
    try:
        await push_account(nc, old.jwt(operator_mode.trust.signing_key))
    finally:
        await nc.close()
    async with connected(operator_mode.url, old.user("check").creds) as check:
        with pytest.raises(NotFoundError):
            await check.nc.jetstream().stream_info("GONE")


async def test_one_tenant_over_its_jetstream_quota_leaves_the_other_working(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a, b = f"{unique}a", f"{unique}b"
    await start(running, operator_mode, a, b, limits={"disk": "64Ki", "streams": 2})
    creds_a = await platform_creds(running.api.client, a)
    creds_b = await platform_creds(running.api.client, b)
    assert creds_a is not None and creds_b is not None
    async with connected(operator_mode.url, creds_a) as ca, connected(operator_mode.url, creds_b) as cb:
        jsa, jsb = ca.nc.jetstream(), cb.nc.jetstream()
        await jsa.add_stream(name="S", subjects=["s.>"])
        with pytest.raises(APIError, match="resource limits exceeded"):
            for _ in range(64):  # 256 KiB into an account of 64 KiB
                await jsa.publish("s.fill", b"x" * 4096)
        await jsb.add_stream(name="S", subjects=["s.>"])
        ack = await jsb.publish("s.one", b"b's message")
        assert ack.seq == 1
        await jsb.add_consumer("S", durable_name="c1")
        (msg,) = await (await jsb.pull_subscribe_bind("c1", stream="S")).fetch(1, timeout=10)
        assert msg.data == b"b's message"


async def test_a_tenant_waits_for_the_platform_secrets(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a = f"{unique}a"
    await create_tenant(running.api.client, a, {})

    async def waiting() -> dict[str, Any] | None:
        obj = await tenant(running.api.client, a)
        synced = running.condition(obj, "Synced")
        return synced if synced.get("reason") == "SigningKeyNotFound" else None

    synced = await running.eventually(waiting, timeout=DEADLINE)
    assert synced["status"] == "False" and "natsflow-operator-signing-key" in synced["message"]
    obj = await tenant(running.api.client, a)
    assert running.condition(obj, "Reconciling")["status"] == "True"
    await seed_platform(running.api.client, operator_mode.trust)
    assert (await ready(running, a))["status"]["account"].startswith("A")


async def test_a_taskdefinition_outliving_its_tenant_is_deleted_without_waiting(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    """Tearing a tenant down in any order: its finalizer does not wait for an account that is gone."""
    a = f"{unique}a"
    await start(running, operator_mode, a, deletionPolicy="Delete")
    await running.api.create("TaskDefinition", a, "pay", {"taskType": "pay"})
    await td_ready(running, a, "pay")
    creds = str(secret_value(await worker_creds(running, a, "pay"), "creds"))
    await running.api.client.delete(paths.tenant(a))

    async def tenant_gone() -> bool:
        return await tenant(running.api.client, a) is None

    await running.eventually(tenant_gone, timeout=DEADLINE)
    assert "Authorization Violation" in str(await refused(operator_mode.url, creds))
    await running.api.delete("TaskDefinition", a, "pay")

    async def td_gone() -> bool:
        return await running.api.get("TaskDefinition", a, "pay") is None

    await running.eventually(td_gone, timeout=DEADLINE)
    assert await running.api.client.get(paths.secret(a, "pay-worker-nats")) is None


MINIMAL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="hello" isExecutable="true">
    <bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="e" /><bpmn:endEvent id="e" />
  </bpmn:process>
</bpmn:definitions>
"""


async def test_a_workflow_is_deployed_into_its_tenants_account_only(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a, b = f"{unique}a", f"{unique}b"
    await start(running, operator_mode, a, b)
    await running.api.create("TaskDefinition", b, "pay", {"taskType": "pay"})  # b's layout exists
    await td_ready(running, b, "pay")
    await running.api.create("Workflow", a, "hello", {"bpmn": MINIMAL})

    async def deployed() -> dict[str, Any] | None:
        obj = await running.api.get("Workflow", a, "hello")
        return obj if running.condition(obj, "Ready").get("status") == "True" else None

    await running.eventually(deployed, timeout=DEADLINE)
    creds_a, creds_b = (
        await platform_creds(running.api.client, a),
        await platform_creds(running.api.client, b),
    )
    assert creds_a is not None and creds_b is not None
    key = layout.workflow_latest_key(a, "hello")
    async with connected(operator_mode.url, creds_a) as ca, connected(operator_mode.url, creds_b) as cb:
        entry = await (await ca.nc.jetstream().key_value(layout.BUCKET_WORKFLOWS)).get(key)
        assert entry.value
        with pytest.raises(KeyNotFoundError):
            await (await cb.nc.jetstream().key_value(layout.BUCKET_WORKFLOWS)).get(key)
