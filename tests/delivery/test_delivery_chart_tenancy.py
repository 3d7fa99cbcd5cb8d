"""The chart's multi-tenant setup (``tenancy.enabled``): the operator serves Tenants with the
platform Secrets, the engine side mounts the tenant credentials, and the bundled NATS config in
operator mode is one a real nats-server runs with."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import RawCredentials
from natsflow_engine.accounts import OperatorTrust, TenantAccount, push_account
from natsflow_engine.server import EmbeddedNatsServer

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]
FULLNAME = "flow-natsflow"
NAMESPACE = "natsflow-system"


@pytest.fixture(scope="module")
def trust() -> OperatorTrust:
    return OperatorTrust.create()


def tenancy_values(trust: OperatorTrust, **extra: Any) -> dict[str, Any]:
    return {
        "nats": {"enabled": True},
        "tenancy": {
            "enabled": True,
            "operatorJwt": trust.jwt,
            "systemAccount": trust.system_account.public,
            "systemAccountJwt": trust.system_account_jwt,
            "userTtl": 3600,
        },
        **extra,
    }


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def test_the_operator_gets_the_platform_secrets(render: Render, trust: OperatorTrust) -> None:
    manifests = render(tenancy_values(trust))
    operator = named(manifests, "Deployment", f"{FULLNAME}-operator")
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == [
        "operator",
        "--tenancy-namespace", NAMESPACE,
        "--signing-key-secret", "natsflow-operator-signing-key",
        "--system-creds-secret", "natsflow-system-credentials",
        "--user-ttl", "3600",
    ]  # fmt: skip
    assert any(m["kind"] == "CustomResourceDefinition" and m["spec"]["scope"] == "Cluster" for m in manifests)
    for m in render():  # off by default: no flag, no mount
        if m["kind"] == "Deployment":
            container = m["spec"]["template"]["spec"]["containers"][0]
            assert "--tenancy-namespace" not in container["args"]
            assert "NATSFLOW_TENANT_CREDENTIALS_DIR" not in {e["name"] for e in container["env"]}


@pytest.mark.parametrize("component", ["engine", "trigger-server", "console"])
def test_the_engine_side_mounts_the_tenant_credentials(
    render: Render, trust: OperatorTrust, component: str
) -> None:
    values = tenancy_values(trust, console={"enabled": True, "usersSecret": {"name": "users"}})
    pod = named(render(values), "Deployment", f"{FULLNAME}-{component}")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NATSFLOW_TENANT_CREDENTIALS_DIR"] == "/etc/natsflow/tenants"
    assert {"name": "tenant-creds", "mountPath": "/etc/natsflow/tenants", "readOnly": True} in container[
        "volumeMounts"
    ]
    volume = next(v for v in pod["volumes"] if v["name"] == "tenant-creds")
    assert volume["secret"]["secretName"] == "natsflow-tenant-credentials" and volume["secret"]["optional"]


def test_a_watch_list_operator_may_write_its_secrets_in_the_release_namespace(
    render: Render, trust: OperatorTrust
) -> None:
    manifests = render(tenancy_values(trust, operator={"watchNamespaces": ["shop"]}))
    role = named(manifests, "Role", f"{FULLNAME}-operator-tenancy")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "patch", "delete"]}
    ]
    binding = named(manifests, "RoleBinding", f"{FULLNAME}-operator-tenancy")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_lint_passes_and_missing_trust_is_refused(
    run_helm: Callable[..., subprocess.CompletedProcess[str]], trust: OperatorTrust
) -> None:
    proc = run_helm("lint", tenancy_values(trust), "--strict")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_helm("template", {"nats": {"enabled": True}, "tenancy": {"enabled": True}})
    assert proc.returncode != 0 and "tenancy.operatorJwt" in proc.stderr


async def test_the_bundled_nats_config_runs_in_operator_mode(
    render: Render, trust: OperatorTrust, tmp_path: Path
) -> None:
    config = named(render(tenancy_values(trust)), "ConfigMap", f"{FULLNAME}-nats")["data"]["nats.conf"]
    # the test server's own port, name and store (flags); everything else as rendered
    kept = [
        line
        for line in config.splitlines()
        if not line.strip().startswith(("port:", "http_port:", "server_name:", "store_dir:"))
    ]
    text = "\n".join(kept).replace("/data", str(tmp_path))
    assert "resolver" in text and trust.jwt in text
    with EmbeddedNatsServer(config=text) as server:
        system = await nats.connect(server.url, user_credentials=RawCredentials(trust.system_user.creds))
        try:
            account = TenantAccount("shop")
            await push_account(system, account.jwt(trust.signing_key))
        finally:
            await system.close()
        nc = await nats.connect(server.url, user_credentials=RawCredentials(account.user("app").creds))
        try:
            ack = await nc.jetstream().add_stream(name="S", subjects=["s.>"])
            assert ack.config.name == "S"
        finally:
            await nc.close()
    assert (tmp_path / "resolver" / f"{account.public}.jwt").exists()
