"""Remote sites of a Tenant (``spec.sites``) on kmock against a real nats-server in operator
mode: the operator mints one user per site, limited to what a leaf link needs, writes it as a
Secret owned by the Tenant, reports it, and revokes it when the site leaves the spec, its grants
change or the Tenant is deleted. The link itself runs in test_operator_site_link.py."""

from __future__ import annotations

import asyncio
from typing import Any

import kmock
import pytest
from natsflow_engine import layout
from natsflow_operator.context import OperatorConfig
from natsflow_operator.kube import paths
from natsflow_operator.models import TenantSite
from natsflow_operator.sites import CREDS_KEY, INBOX_KEY, site_inbox_prefix, site_permissions
from natsflow_operator.tenancy import TenancyConfig, creds_claims
from tenants_kit import (
    DEADLINE,
    PLATFORM,
    OperatorMode,
    connect,
    connected,
    create_tenant,
    operator_mode,
    refused,
    secret_value,
    seed_platform,
    site_secret,
    start,
    tenancy_config,
    tenant,
)
from test_operator_crds import check

__all__ = ["operator_mode"]  # the module's server fixture

DC1 = {"name": "dc1", "taskTypes": ["pay"], "publish": ["site.orders"]}


@pytest.fixture
def operator_config(k8s: kmock.KubernetesEmulator, operator_mode: OperatorMode) -> OperatorConfig:
    return tenancy_config(
        k8s, operator_mode, TenancyConfig(namespace=PLATFORM, user_ttl=600.0, renew_before=200.0)
    )


async def site_status(running: Any, name: str, check: Any) -> list[dict[str, Any]]:
    """``status.sites`` once ``check`` holds for it (a correctness deadline)."""

    async def probe() -> list[dict[str, Any]] | None:
        sites = list(((await tenant(running.api.client, name)) or {}).get("status", {}).get("sites") or [])
        return sites if check(sites) else None

    return await running.eventually(probe, timeout=DEADLINE)


async def set_sites(running: Any, name: str, sites: list[dict[str, Any]]) -> None:
    obj = await tenant(running.api.client, name)
    assert obj is not None
    generation = int(obj["metadata"].get("generation", 1)) + 1
    await running.api.client.merge_patch(
        paths.tenant(name), {"metadata": {"generation": generation}, "spec": {"sites": sites}}
    )


async def test_a_site_gets_a_user_that_can_do_only_what_its_leaf_link_needs(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a = f"{unique}a"
    (account,) = await start(running, operator_mode, a, sites=[DC1])
    secret = await site_secret(running, a, "dc1")
    owner = await tenant(running.api.client, a)
    assert owner is not None
    assert secret["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    assert secret_value(secret, INBOX_KEY) == site_inbox_prefix("dc1") == "_INBOX_site_dc1"
    creds = str(secret_value(secret, CREDS_KEY))
    claims = creds_claims(creds)
    assert claims["nats"]["issuer_account"] == account
    (entry,) = await site_status(running, a, bool)
    assert entry == {
        "name": "dc1",
        "secret": "natsflow-site-dc1",
        "user": claims["sub"],
        "inboxPrefix": "_INBOX_site_dc1",
        "credentialsExpireAt": entry["credentialsExpireAt"],
    }
    consumer = layout.job_consumer(a, "pay")
    assert f"$JS.hub.API.CONSUMER.MSG.NEXT.NF_JOBS.{consumer}" in claims["nats"]["pub"]["allow"]
    # the server holds the user to its grants (as a leaf link's user or as a plain client)
    iid = "0" * 24
    forbidden_publish = [
        "$JS.API.STREAM.INFO.NF_JOBS",
        "$JS.hub.API.STREAM.MSG.GET.KV_nf_instances",  # read an instance record
        "$JS.hub.API.DIRECT.GET.KV_nf_instances",
        f"$KV.nf_instances.{a}.{iid}",  # overwrite it
        f"$KV.nf_triggers.{a}.orders",  # write another bucket
        "$JS.hub.API.CONSUMER.CREATE.NF_HIST",  # read history
        f"$JS.hub.API.CONSUMER.MSG.NEXT.NF_JOBS.{layout.job_consumer(a, 'ship')}",  # another task type
        f"$JS.hub.API.CONSUMER.DELETE.NF_JOBS.{consumer}",
        "$JS.hub.API.CONSUMER.MSG.NEXT.NF_CMD.engine",  # steal the engine's commands
        f"nf.cmd.{a}.{iid}",  # a command that is not a result (launch, cancel, a user task)
        f"nf.cmd.{a}.{iid}.pay.more",
        "nf.job.x.pay",  # fabricate jobs
        "other.orders",
    ]
    forbidden_subscribe = ["_INBOX.>", "_INBOX_site_dc2.>", "nf.>", ">", "$JS.EVENT.>"]
    allowed = [f"nf.cmd.{a}.{iid}.pay", "site.orders", f"$JS.hub.API.CONSUMER.INFO.NF_JOBS.{consumer}"]
    async with connected(operator_mode.url, creds, inbox_prefix="_INBOX_site_dc1") as conn:
        for subject in forbidden_publish + allowed:
            await conn.nc.publish(subject, b"{}", reply="_INBOX_site_dc1.x")
        for subject in forbidden_subscribe:
            await conn.nc.subscribe(subject)
        for subject in forbidden_publish + forbidden_subscribe:
            assert await conn.denied(subject), (subject, conn.errors)
        assert not [e for e in conn.errors if any(f'"{s.lower()}"' in e.lower() for s in allowed)]


@pytest.mark.parametrize(
    ("site", "message"),
    [
        ({"name": "DC1"}, "does not match"),
        ({"name": "dc1.x"}, "does not match"),
        ({"name": "x" * 64}, "is too long"),
        ({"name": "dc1", "publish": ["$KV.nf_instances.x"]}, "does not match"),
        ({"name": "dc1", "publish": ["_INBOX.x"]}, "does not match"),
        ({"name": "dc1", "publish": [">"]}, "does not match"),
        ({"name": "dc1", "publish": ["*.orders"]}, "does not match"),
        ({"name": "dc1", "publish": ["orders x"]}, "does not match"),
        ({"name": "dc1", "publish": ["nf.cmd.shop.x"]}, "natsflow's own"),
        ({"name": "dc1", "jsDomain": "hub.x"}, "does not match"),
        ({"name": "dc1", "region": "eu"}, "Additional properties"),
    ],
)
def test_malformed_sites_are_refused(site: dict[str, Any], message: str) -> None:
    doc = {"apiVersion": "natsflow.io/v1alpha1", "kind": "Tenant", "metadata": {"name": "shop"}}
    problems = check({**doc, "spec": {"sites": [site]}})
    assert any(message in p for p in problems), problems
    assert any(p.startswith("model:") for p in problems), problems  # natsflow apply refuses it too
    twice = check({**doc, "spec": {"sites": [DC1, DC1]}})
    assert any("names must be unique" in p for p in twice), twice


async def test_a_site_removed_or_regranted_loses_its_user(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a = f"{unique}a"
    dc2 = {"name": "dc2", "taskTypes": ["ship"]}
    await start(running, operator_mode, a, sites=[DC1, dc2])
    one = str(secret_value(await site_secret(running, a, "dc1"), CREDS_KEY))
    two = str(secret_value(await site_secret(running, a, "dc2"), CREDS_KEY))
    first, second = await connect(operator_mode.url, one), await connect(operator_mode.url, two)
    try:
        await set_sites(running, a, [dc2])  # dc1 leaves the spec
        await asyncio.wait_for(first.closed.wait(), DEADLINE)  # revoked: the server ends it

        async def deleted() -> bool:
            return await running.api.client.get(paths.secret(a, "natsflow-site-dc1")) is None

        await running.eventually(deleted, timeout=DEADLINE)
        await site_status(running, a, lambda sites: [s["name"] for s in sites] == ["dc2"])
        assert "Authorization Violation" in str(await refused(operator_mode.url, one))
        assert not second.closed.is_set()  # the other site is untouched
        # other grants for dc2: a new user key, and the broader JWT stops working at once
        await set_sites(running, a, [{**dc2, "taskTypes": []}])
        await asyncio.wait_for(second.closed.wait(), DEADLINE)
        (entry,) = await site_status(running, a, lambda s: s and s[0]["user"] != creds_claims(two)["sub"])
        new = str(secret_value(await site_secret(running, a, "dc2"), CREDS_KEY))
        assert creds_claims(new)["sub"] == entry["user"]
        assert "Authorization Violation" in str(await refused(operator_mode.url, two))
        async with connected(operator_mode.url, new, inbox_prefix="_INBOX_site_dc2") as fresh:
            await fresh.nc.flush(timeout=5)
    finally:
        await first.nc.close()
        await second.nc.close()


async def test_deleting_the_tenant_revokes_its_sites_and_deletes_their_secrets(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a = f"{unique}a"
    await start(running, operator_mode, a, sites=[DC1])
    creds = str(secret_value(await site_secret(running, a, "dc1"), CREDS_KEY))
    conn = await connect(operator_mode.url, creds)
    try:
        await running.api.client.delete(paths.tenant(a))
        await asyncio.wait_for(conn.closed.wait(), DEADLINE)
    finally:
        await conn.nc.close()

    async def gone() -> bool:
        return await running.api.client.get(paths.secret(a, "natsflow-site-dc1")) is None

    await running.eventually(gone, timeout=DEADLINE)
    assert "Authorization Violation" in str(await refused(operator_mode.url, creds))


async def test_a_site_secret_the_operator_does_not_own_is_left_alone(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a = f"{unique}a"
    await running.api.create_core("secrets", a, "natsflow-site-dc1", {"stringData": {"hub.creds": "theirs"}})
    await seed_platform(running.api.client, operator_mode.trust)
    await create_tenant(running.api.client, a, {"sites": [DC1]})

    async def conflicting() -> dict[str, Any] | None:
        synced = running.condition(await tenant(running.api.client, a), "Synced")
        return synced if synced.get("reason") == "CredentialsSecretConflict" else None

    synced = await running.eventually(conflicting, timeout=DEADLINE)
    assert synced["status"] == "False" and f"{a}/natsflow-site-dc1" in synced["message"]
    found = await running.api.client.get(paths.secret(a, "natsflow-site-dc1"))
    assert secret_value(found, CREDS_KEY) is None and "ownerReferences" not in found["metadata"]


def test_the_site_grants_are_the_documented_ones() -> None:
    site = TenantSite.model_validate(DC1)
    consumer = layout.job_consumer("shop", "pay")
    assert site_permissions("shop", site).claims() == {
        "pub": {
            "allow": [
                f"$JS.hub.API.CONSUMER.INFO.NF_JOBS.{consumer}",
                f"$JS.hub.API.CONSUMER.MSG.NEXT.NF_JOBS.{consumer}",
                f"$JS.ACK.NF_JOBS.{consumer}.>",
                "nf.cmd.>",
                "site.orders",
            ],
            "deny": ["nf.cmd.*.*", "nf.cmd.*.*.*.>"],
        },
        "sub": {"allow": ["_INBOX_site_dc1.>"]},
    }
    # without task types no result may be sent, and a site that names nothing may publish nothing
    assert site_permissions("shop", TenantSite(name="dc2", publish=["a.b"])).claims()["pub"] == {
        "allow": ["a.b"]
    }
    assert site_permissions("shop", TenantSite(name="dc3")).claims()["pub"] == {"allow": [], "deny": [">"]}
