"""An operator serving some namespaces only (``--namespace``, the chart's
``operator.watchNamespaces``) still runs the handlers of the cluster-scoped Tenant for the
namespaces it serves (Kopf watches cluster-scoped resources cluster-wide once a served namespace
exists), and leaves the Tenants of other namespaces alone: no account, no status, no finalizer.
On kmock against a real nats-server in operator mode."""

from __future__ import annotations

import dataclasses
from typing import Any

import kmock
import pytest
from kmock._internal import parsing as kmock_parsing
from natsflow_operator.context import OperatorConfig
from natsflow_operator.kube import paths
from natsflow_operator.tenancy import TenancyConfig, creds_claims
from natsflow_operator.tenant import serves
from tenants_kit import (
    PLATFORM,
    OperatorMode,
    connected,
    create_tenant,
    operator_mode,
    ready,
    secret_value,
    seed_platform,
    td_ready,
    tenancy_config,
    tenant,
    worker_creds,
)

__all__ = ["operator_mode"]  # the module's server fixture


@pytest.fixture
def namespace_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """kmock reads ``/api/v1/namespaces`` as the prefix of a namespaced path and answers 500;
    an operator with ``--namespace`` lists and watches exactly that path (a cluster-wide one
    never does). Parse it as the list of Namespace objects it is."""
    original = kmock_parsing.parse_path

    def parse_path(path: str) -> kmock_parsing.ParsedPath:
        if path.strip("/") == "api/v1/namespaces":
            return kmock_parsing.ParsedPath("", "v1", "namespaces")
        return original(path)

    monkeypatch.setattr(kmock_parsing, "parse_path", parse_path)


@pytest.fixture
def operator_config(
    k8s: kmock.KubernetesEmulator, operator_mode: OperatorMode, unique: str, namespace_listing: None
) -> OperatorConfig:
    config = tenancy_config(
        k8s, operator_mode, TenancyConfig(namespace=PLATFORM, user_ttl=600.0, renew_before=200.0)
    )
    for namespace in (f"{unique}other", f"{unique}shop"):  # both exist when the operator starts
        k8s.objects[kmock.resource("v1/namespaces"), None, namespace] = {"metadata": {"name": namespace}}
    return dataclasses.replace(config, namespaces=(f"{unique}shop",))


def test_which_tenants_an_operator_serves() -> None:
    assert serves((), "shop")
    assert serves(("shop", "bank"), "bank") and not serves(("shop",), "bank")
    assert serves(("team-*",), "team-a") and not serves(("team-*",), "other")
    assert not serves(("!team-b",), "team-b") and serves(("!team-b",), "team-a")  # Kopf's syntax


async def test_a_namespace_restricted_operator_serves_the_tenants_of_its_namespaces(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    shop, other = f"{unique}shop", f"{unique}other"
    client = running.api.client
    await seed_platform(client, operator_mode.trust)
    await create_tenant(client, other, {})
    await create_tenant(client, shop, {})

    # the Tenant of the served namespace: its account, its platform user, a worker user
    obj = await ready(running, shop)
    creds = secret_value(
        await client.get(paths.secret(PLATFORM, "natsflow-tenant-credentials")), f"{shop}.creds"
    )
    assert creds is not None and creds_claims(creds)["nats"]["issuer_account"] == obj["status"]["account"]
    async with connected(operator_mode.url, creds) as conn:
        assert (await conn.nc.jetstream().account_info()).streams >= 0
    await running.api.create("TaskDefinition", shop, "pay", {"taskType": "pay"})
    await td_ready(running, shop, "pay")
    assert secret_value(await worker_creds(running, shop, "pay"), "creds")

    # the Tenant of a namespace it does not serve: untouched (created before shop's, so its
    # events reached the operator first)
    left = await tenant(client, other)
    assert left is not None
    assert not left.get("status") and not left["metadata"].get("finalizers"), left
    assert await client.get(paths.secret(PLATFORM, f"natsflow-account-{other}")) is None
    assert (
        secret_value(
            await client.get(paths.secret(PLATFORM, "natsflow-tenant-credentials")), f"{other}.creds"
        )
        is None
    )
