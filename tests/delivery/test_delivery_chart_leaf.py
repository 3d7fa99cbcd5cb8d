"""Chart values for remote sites: the hub's leaf node listener and JetStream domain
(``nats.server.leafnodes``, ``nats.server.jetstream.domain``) and a site install (``site``: a
leaf node server and workers). The rendered hub and site configurations run: a real hub in
operator mode, a real leaf node connecting as a user of the tenant's account, and
``natsflow worker`` with the rendered worker environment paying a job of the hub's engine."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import nats
import pytest
import yaml
from nats.aio.client import RawCredentials
from natsflow_engine import layout
from natsflow_engine.accounts import OperatorTrust, TenantAccount, push_account
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import deploy_definitions
from natsflow_engine.runtime.engine import Engine
from natsflow_engine.runtime.setup import ensure_job_consumer, ensure_layout
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.store import publish_command

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]
RunHelm = Callable[..., subprocess.CompletedProcess[str]]
FULLNAME = "flow-natsflow"
CHART = Path(__file__).resolve().parents[2] / "charts" / "natsflow"
SITE_VALUES = CHART / "values-site.yaml"
MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="charge" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="pay" />
    <bpmn:serviceTask id="pay"><bpmn:extensionElements>
      <zeebe:taskDefinition type="pay" /></bpmn:extensionElements></bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="pay" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""
WORKER_APP = """
from natsflow.worker import Worker

app = Worker()


@app.task("pay")
async def pay(job):
    return {"paid_at": "site", "amount": job.variables["amount"]}
"""


@pytest.fixture(scope="module")
def trust() -> OperatorTrust:
    return OperatorTrust.create()


def hub_values(trust: OperatorTrust, port: int = 7422, **leaf: Any) -> dict[str, Any]:
    return {
        "nats": {
            "enabled": True,
            "server": {"jetstream": {"domain": "hub"}, "leafnodes": {"enabled": True, "port": port, **leaf}},
        },
        "tenancy": {
            "enabled": True,
            "operatorJwt": trust.jwt,
            "systemAccount": trust.system_account.public,
            "systemAccountJwt": trust.system_account_jwt,
        },
    }


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _runnable(config: str, replace: dict[str, str]) -> str:
    """A rendered nats.conf for a server on loopback: its own client port, name and store come
    from the test server's flags (top-level lines dropped); paths replaced."""
    kept = [
        line
        for line in config.splitlines()
        if not line.startswith(("port:", "http_port:", "server_name:")) and "store_dir:" not in line
    ]
    text = "\n".join(kept)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def test_the_hub_listens_for_leaf_nodes_with_a_domain_and_optional_tls(
    render: Render, trust: OperatorTrust
) -> None:
    manifests = render(hub_values(trust, tlsSecret="leaf-tls"))
    config = named(manifests, "ConfigMap", f"{FULLNAME}-nats")["data"]["nats.conf"]
    assert 'domain: "hub"' in config
    assert "leafnodes {\n  port: 7422\n  tls {\n    cert_file: /etc/nats-leaf-tls/tls.crt" in config
    service = named(manifests, "Service", f"{FULLNAME}-nats")
    assert {"name": "leafnodes", "port": 7422, "targetPort": "leafnodes", "protocol": "TCP"} in service[
        "spec"
    ]["ports"]
    pod = named(manifests, "StatefulSet", f"{FULLNAME}-nats")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert {"name": "leafnodes", "containerPort": 7422, "protocol": "TCP"} in container["ports"]
    assert {"name": "leaf-tls", "mountPath": "/etc/nats-leaf-tls", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {"name": "leaf-tls", "secret": {"secretName": "leaf-tls"}} in pod["volumes"]
    plain = named(render(hub_values(trust)), "ConfigMap", f"{FULLNAME}-nats")["data"]["nats.conf"]
    assert "leafnodes {\n  port: 7422\n}" in plain and "tls" not in plain
    default = named(render({"nats": {"enabled": True}}), "ConfigMap", f"{FULLNAME}-nats")["data"]["nats.conf"]
    assert "leafnodes" not in default and "domain" not in default


def test_leaf_nodes_need_tenant_accounts_and_a_domain(run_helm: RunHelm, trust: OperatorTrust) -> None:
    proc = run_helm("template", {"nats": {"enabled": True, "server": {"leafnodes": {"enabled": True}}}})
    assert proc.returncode != 0 and "needs tenancy.enabled" in proc.stderr
    values = hub_values(trust)
    values["nats"]["server"]["jetstream"]["domain"] = ""
    proc = run_helm("template", values)
    assert proc.returncode != 0 and "needs nats.server.jetstream.domain" in proc.stderr
    proc = run_helm("lint", hub_values(trust), "--strict")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_site_install_is_a_leaf_node_and_workers_only(run_helm: RunHelm, render: Render) -> None:
    proc = run_helm("lint", None, "--strict", "--values", str(SITE_VALUES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_helm("template", None, "--values", str(SITE_VALUES), "--set", "site.hubUrl=")
    assert proc.returncode != 0 and "needs site.hubUrl" in proc.stderr
    manifests = [
        d for d in yaml.safe_load_all(run_helm("template", None, "--values", str(SITE_VALUES)).stdout) if d
    ]
    assert sorted((m["kind"], m["metadata"]["name"]) for m in manifests) == [
        ("ConfigMap", f"{FULLNAME}-site-nats"),
        ("Deployment", f"{FULLNAME}-site-nats"),
        ("Deployment", f"{FULLNAME}-site-worker-charge-card"),
        ("Service", f"{FULLNAME}-site-nats"),
    ]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.35.0", strict=True)
    config = named(manifests, "ConfigMap", f"{FULLNAME}-site-nats")["data"]["nats.conf"]
    assert 'urls: ["nats-leaf://nats.example.com:7422"]' in config
    assert 'credentials: "/etc/nats-hub/hub.creds"' in config and "jetstream" not in config
    worker = named(manifests, "Deployment", f"{FULLNAME}-site-worker-charge-card")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["worker", "tasks.payments:app", "--task-type", "charge-card"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["NATS_URL"] == f"nats://{FULLNAME}-site-nats.natsflow-system.svc:4222"
    assert (env["NATSFLOW_TENANT"], env["NATSFLOW_JS_DOMAIN"]) == ("shop", "hub")


async def _eventually(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Retry ``await check()`` until it returns without raising (a correctness deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await check()
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{what}: {exc!r}") from exc
            await asyncio.sleep(0.1)


async def test_the_rendered_hub_and_site_link_and_the_sites_worker_pays_a_job(
    render: Render, run_helm: RunHelm, trust: OperatorTrust, tmp_path: Path
) -> None:
    link = _free_port()
    hub_conf = named(render(hub_values(trust, port=link)), "ConfigMap", f"{FULLNAME}-nats")["data"][
        "nats.conf"
    ]
    site_docs = yaml.safe_load_all(
        run_helm(
            "template",
            None,
            "--values",
            str(SITE_VALUES),
            "--set",
            f"site.hubUrl=nats-leaf://127.0.0.1:{link}",
        ).stdout
    )
    site = [d for d in site_docs if d]
    site_conf = named(site, "ConfigMap", f"{FULLNAME}-site-nats")["data"]["nats.conf"]
    worker_env = {
        e["name"]: e["value"]
        for e in named(site, "Deployment", f"{FULLNAME}-site-worker-charge-card")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }
    shop = TenantAccount("shop")
    creds = tmp_path / "hub.creds"
    creds.write_text(shop.user("site").creds)
    (tmp_path / "hub").mkdir()
    with EmbeddedNatsServer(config=_runnable(hub_conf, {"/data": str(tmp_path / "hub")})) as hub:
        system = await nats.connect(hub.url, user_credentials=RawCredentials(trust.system_user.creds))
        try:
            await push_account(system, shop.jwt(trust.signing_key))
        finally:
            await system.close()
        platform = await nats.connect(hub.url, user_credentials=RawCredentials(shop.user("platform").creds))
        leaf_conf = _runnable(site_conf, {"/etc/nats-hub/hub.creds": str(creds)})
        with EmbeddedNatsServer(config=leaf_conf, jetstream=False) as leaf:
            engine = None
            proc = None
            try:
                js = platform.jetstream()
                await ensure_layout(js)
                await deploy_definitions(await js.key_value(layout.BUCKET_WORKFLOWS), "shop", MODEL)
                await ensure_job_consumer(js, "shop", "pay")  # the operator's part at the hub
                engine = await Engine(platform, tenant="shop").start()
                # the link is up: a client of the leaf reaches the tenant's JetStream at the hub
                local = await nats.connect(leaf.url)
                try:
                    info = await _eventually(lambda: local.jetstream(domain="hub").account_info(), "link")
                    assert info.domain == "hub"
                finally:
                    await local.close()
                # `natsflow worker` with the environment the chart gives the site's workers
                (tmp_path / "site_app.py").write_text(WORKER_APP)
                env = {**os.environ, **worker_env, "NATS_URL": leaf.url, "NATSFLOW_HEALTH_PORT": "0"}
                cli = [sys.executable, "-c", "from natsflow.cli import main; main()"]
                with (tmp_path / "worker.log").open("w") as log:
                    proc = await asyncio.create_subprocess_exec(
                        *cli, "worker", str(tmp_path / "site_app.py"), env=env, stderr=log
                    )
                iid = r.new_id()
                launch = r.Launch(
                    id=f"l.{iid}", tenant="shop", instance=iid, process_id="charge", variables={"amount": 5}
                )
                await publish_command(js, launch)
                kv = await js.key_value(layout.BUCKET_INSTANCES)

                async def completed() -> r.InstanceState:
                    state = r.decode_state((await kv.get(layout.instance_key("shop", iid))).value or b"")
                    assert state.state == "completed", state.state
                    return state

                state = await _eventually(completed, "the site's worker paid the job")
                assert state.root_vars() == {"amount": 5, "paid_at": "site"}
            finally:
                if proc is not None:
                    proc.terminate()
                    try:
                        await asyncio.wait_for(proc.wait(), timeout=30)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
                if engine is not None:
                    await engine.stop(timeout=2.0)
                await platform.close()
