"""The Tenant CRD and model: generated like the other kinds, cluster-scoped, limits refused when
malformed, mapped onto the account's JWT limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from natsflow_engine.accounts import AccountLimits, KeyKind, NKey, TenantAccount
from natsflow_operator import crdgen
from natsflow_operator.context import OperatorConfig
from natsflow_operator.kinds import KINDS
from natsflow_operator.kube import KubeClient
from natsflow_operator.models import API_VERSION, TenantSpec, parse_quantity
from natsflow_operator.tenancy import Accounts, TenancyConfig, account_limits
from test_operator_crds import check

ROOT = Path(__file__).resolve().parents[2]
TENANT_EXAMPLE = ROOT / "examples" / "k8s" / "tenant" / "shop.yaml"


def tenant(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "Tenant", "metadata": {"name": "shop"}, "spec": spec}


FULL = {
    "limits": {
        "memory": "256Mi",
        "disk": "10Gi",
        "streams": 40,
        "consumers": 500,
        "connections": 100,
        "payload": "1Mi",
    },
    "deletionPolicy": "Delete",
}


def test_the_tenant_crd_is_cluster_scoped_with_the_account_in_its_status() -> None:
    crd = crdgen.crd(KINDS["Tenant"])
    assert crd["spec"]["scope"] == "Cluster"
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert {"account", "conditions", "observedGeneration"} <= set(
        schema["properties"]["status"]["properties"]
    )
    assert "metadata.name" in schema["x-kubernetes-validations"][0]["rule"]
    assert schema["properties"]["spec"]["properties"]["deletionPolicy"]["default"] == "Retain"
    assert all(
        crdgen.crd(info)["spec"]["scope"] == "Namespaced" for info in KINDS.values() if info.namespaced
    )


def test_a_full_tenant_validates_and_maps_onto_account_limits() -> None:
    assert check(tenant(FULL)) == []
    assert check(tenant({})) == []
    limits = account_limits(TenantSpec.model_validate(FULL).limits)
    assert limits == AccountLimits(
        memory=256 << 20, disk=10 << 30, streams=40, consumers=500, connections=100, payload=1 << 20
    )
    unlimited = account_limits(TenantSpec.model_validate({}).limits)
    assert (unlimited.memory, unlimited.disk, unlimited.streams, unlimited.payload) == (-1, -1, -1, -1)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"disk": "10GB"}, "does not match"),
        ({"memory": "0"}, "does not match"),
        ({"memory": "-1"}, "does not match"),
        ({"streams": 0}, "less than the minimum"),
        ({"connections": "many"}, "is not of type"),
        ({"cpu": 1}, "Additional properties"),
    ],
)
def test_malformed_limits_are_refused(limits: dict[str, Any], message: str) -> None:
    problems = check(tenant({"limits": limits}))
    assert any(message in p for p in problems), problems
    assert any(p.startswith("model:") for p in problems), problems  # natsflow apply refuses it too


def test_an_unknown_deletion_policy_is_refused() -> None:
    problems = check(tenant({"deletionPolicy": "Forget"}))
    assert any("is not one of" in p for p in problems), problems


def test_quantities() -> None:
    assert (
        parse_quantity("512") == 512 and parse_quantity("64Ki") == 65536 and parse_quantity("2Ti") == 2 << 40
    )
    for bad in ("0", "1.5Gi", "1G", "", "Ki"):
        with pytest.raises(ValueError, match="invalid quantity"):
            parse_quantity(bad)


async def test_revocations_older_than_a_user_lifetime_are_pruned() -> None:
    kube = KubeClient()
    accounts = Accounts(
        kube, TenancyConfig(namespace="p", user_ttl=100.0), "nats://x", clock=lambda: 10_000.0
    )
    account = TenantAccount("shop")
    old, recent = NKey.generate(KeyKind.USER).public, NKey.generate(KeyKind.USER).public
    account.revocations = {old: 9_000, recent: 9_950, "*": 1}
    accounts.prune(account)
    assert account.revocations == {recent: 9_950, "*": 1}  # every JWT `old` named has expired
    await kube.close()


def test_the_operator_command_takes_the_charts_tenancy_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner
    from natsflow_operator import cli, main

    seen: list[OperatorConfig] = []
    monkeypatch.setattr(main, "run_operator", seen.append)
    args = [
        "--tenancy-namespace", "natsflow-system",
        "--signing-key-secret", "signing",
        "--system-creds-secret", "system",
        "--user-ttl", "3600",
        "--health-port", "0",
    ]  # fmt: skip
    result = CliRunner().invoke(cli.operator_cmd, args)
    assert result.exit_code == 0, result.output
    assert seen[0].tenancy == TenancyConfig(
        namespace="natsflow-system",
        signing_key_secret="signing",
        system_creds_secret="system",
        user_ttl=3600.0,
        renew_before=1200.0,
    )
    seen.clear()
    assert CliRunner().invoke(cli.operator_cmd, ["--health-port", "0"]).exit_code == 0
    assert seen[0].tenancy is None  # no Tenants served, natsRef and the default connection only
    refused = CliRunner().invoke(cli.operator_cmd, [*args[:6], "--user-ttl", "10"])
    assert refused.exit_code != 0 and "at least 60" in refused.output


def test_the_tenant_example_validates_and_its_objects_belong_together() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all(TENANT_EXAMPLE.read_text()) if d}
    assert sorted(docs) == ["Namespace", "TaskDefinition", "Tenant"]
    kubernetes_validate.validate(docs["Namespace"], "1.35.0", strict=True)
    assert check(docs["Tenant"]) == [] and check(docs["TaskDefinition"]) == []
    namespace = docs["Namespace"]["metadata"]["name"]
    assert docs["Tenant"]["metadata"]["name"] == namespace  # one namespace is one tenant
    assert "namespace" not in docs["Tenant"]["metadata"]  # cluster-scoped
    assert docs["TaskDefinition"]["metadata"]["namespace"] == namespace
    assert "natsRef" not in docs["TaskDefinition"]["spec"]  # reconciled in the tenant's account
    limits = account_limits(TenantSpec.model_validate(docs["Tenant"]["spec"]).limits)
    assert limits == AccountLimits(
        memory=256 << 20, disk=10 << 30, streams=40, consumers=500, connections=100, payload=1 << 20
    )
    assert "examples/k8s/tenant/shop.yaml" in (ROOT / "docs" / "multitenancy.md").read_text()
