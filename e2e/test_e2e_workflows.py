"""The example Workflow, TaskDefinition and Trigger (examples/k8s/) on a real cluster, in order:

ready (and Healthy for Argo CD) -> workers idle at zero -> trigger messages start instances that
complete, workers scaled up -> workers back to zero -> deleting the resources cleans NATS.

The tests of this module share one tenant namespace and run in file order.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import nats
import pytest
from e2e_kit import (
    NATS_SERVICE,
    ROOT,
    SYSTEM_NS,
    WORKER_IMAGE,
    Kubectl,
    PortForward,
    concrete_subject,
    is_ready,
    wait_for,
)
from e2e_offline import KINDS, Example, load_example
from nats.js.errors import KeyNotFoundError, NoKeysError, NotFoundError
from natsflow_engine import layout
from natsflow_engine.runtime.records import decode_state

MESSAGES = 20


@pytest.fixture(scope="module")
def example(kubectl: Kubectl, tenant: str, images: tuple[str, str]) -> Example:
    example, manifests = load_example(tenant, WORKER_IMAGE)
    kubectl.apply(manifests, namespace=tenant)
    return example


@pytest.fixture(scope="module")
def nats_port(kubectl: Kubectl, platform: str) -> Iterator[int]:
    with PortForward(kubectl, NATS_SERVICE, SYSTEM_NS, 4222) as pf:
        yield pf.local_port


@pytest.fixture
async def nc(nats_port: int) -> AsyncIterator[nats.NATS]:
    client = await nats.connect(f"nats://127.0.0.1:{nats_port}", connect_timeout=10)
    try:
        yield client
    finally:
        await client.close()


def worker_deployment(kubectl: Kubectl, example: Example, name: str) -> dict[str, Any]:
    td = kubectl.get("taskdefinition", name, example.namespace)
    deployment = td.get("status", {}).get("deployment") or f"{name}-worker"
    return kubectl.get("deployment", deployment, example.namespace)


def test_resources_become_ready_and_argo_healthy(kubectl: Kubectl, example: Example) -> None:
    from lupa import lua51

    script = (ROOT / "deploy" / "argocd" / "health.lua").read_text()
    for kind in KINDS:
        for name in example.names(kind):
            obj = wait_for(
                f"{kind} {name} Ready=True",
                lambda kind=kind, name=name: (
                    (o := kubectl.get(kind.lower(), name, example.namespace)) and is_ready(o) and o
                ),
                timeout=240,
            )
            lua = lua51.LuaRuntime()
            lua.globals().obj = lua.execute("return " + _lua_literal(obj))
            hs = lua.execute(script)
            assert hs["status"] == "Healthy", (kind, name, hs["message"])


def _lua_literal(value: Any) -> str:
    """A Lua table constructor for a JSON value (what Argo CD hands the health script)."""
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"[{json.dumps(k)}] = {_lua_literal(v)}" for k, v in value.items() if v is not None)
            + "}"
        )
    if isinstance(value, list):
        return "{" + ", ".join(_lua_literal(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def test_workers_idle_at_zero(kubectl: Kubectl, example: Example) -> None:
    for name in example.with_workers():
        wait_for(
            f"worker Deployment of {name} at 0 replicas",
            lambda name=name: worker_deployment(kubectl, example, name)["spec"].get("replicas") == 0,
            timeout=180,
        )


async def test_trigger_messages_complete_instances(kubectl: Kubectl, example: Example, nc: nats.NATS) -> None:
    trigger = example.objects["Trigger"][0]
    subject = concrete_subject(trigger["spec"]["subject"], "e2e")
    process_id = trigger["spec"]["workflowRef"]["processId"]
    payload = json.loads(os.environ.get("NATSFLOW_E2E_PAYLOAD", '{"orderId": "o-1", "amount": 42}'))
    js = nc.jetstream()
    ids = [f"e2e-{uuid.uuid4().hex}" for _ in range(MESSAGES)]
    for i, msg_id in enumerate(ids):
        ack = await js.publish(
            subject, json.dumps({**payload, "seq": i}).encode(), headers={"Nats-Msg-Id": msg_id}
        )
        assert not ack.duplicate
    again = await js.publish(subject, json.dumps(payload).encode(), headers={"Nats-Msg-Id": ids[0]})
    assert again.duplicate, "JetStream must drop a re-sent trigger message"

    kv = await js.key_value(layout.BUCKET_INSTANCES)
    prefix = f"{example.namespace}."
    most_replicas = 0

    async def states() -> dict[str, int]:
        counts: dict[str, int] = {}
        try:
            keys = await kv.keys()
        except NoKeysError:  # no instance yet
            return counts
        for key in keys:
            if not key.startswith(prefix):
                continue
            entry = await kv.get(key)
            if entry.value:
                state = decode_state(entry.value)
                if state.process_id == process_id:
                    counts[state.state] = counts.get(state.state, 0) + 1
        return counts

    td_name = example.with_workers()[0]
    async with asyncio.timeout(420):
        while True:
            deployment = await asyncio.to_thread(worker_deployment, kubectl, example, td_name)
            most_replicas = max(most_replicas, deployment["spec"].get("replicas") or 0)
            counts = await states()
            assert not counts.get("failed"), f"failed instances: {counts}"
            if counts.get("completed", 0) >= MESSAGES:
                break
            await asyncio.sleep(2)
    assert counts == {"completed": MESSAGES}, counts
    assert most_replicas >= 1, "workers never scaled up from zero"


def test_workers_scale_back_to_zero(kubectl: Kubectl, example: Example) -> None:
    for name in example.with_workers():
        wait_for(
            f"worker Deployment of {name} back at 0 replicas",
            lambda name=name: worker_deployment(kubectl, example, name)["spec"].get("replicas") == 0,
            timeout=240,
        )
        td = kubectl.get("taskdefinition", name, example.namespace)
        assert td["status"].get("pending") in (0, None)


async def test_deleting_resources_cleans_nats(kubectl: Kubectl, example: Example, nc: nats.NATS) -> None:
    ns = example.namespace
    td_specs = {o["metadata"]["name"]: o["spec"] for o in example.objects["TaskDefinition"]}
    process_ids = [
        kubectl.get("workflow", name, ns).get("status", {}).get("processIds", [])
        for name in example.names("Workflow")
    ]
    for kind in reversed(KINDS):
        for name in example.names(kind):
            kubectl("-n", ns, "delete", kind.lower(), name, "--wait=true", "--timeout=180s", timeout=200)
            assert not kubectl.exists(kind.lower(), name, ns)

    js = nc.jetstream()
    taskdefs = await js.key_value(layout.BUCKET_TASKDEFS)
    triggers = await js.key_value(layout.BUCKET_TRIGGERS)
    workflows = await js.key_value(layout.BUCKET_WORKFLOWS)
    for name, spec in td_specs.items():
        task_type = spec["taskType"]
        with pytest.raises(KeyNotFoundError):
            await taskdefs.get(layout.taskdef_key(ns, task_type))
        with pytest.raises(NotFoundError):
            await js.consumer_info(layout.STREAM_JOBS, layout.job_consumer(ns, task_type))
        await asyncio.to_thread(
            wait_for,
            f"worker Deployment of {name} deleted (owned by the TaskDefinition)",
            lambda name=name: not kubectl.exists("deployment", f"{name}-worker", ns),
            timeout=120,
        )
    for name in example.names("Trigger"):
        with pytest.raises(KeyNotFoundError):
            await triggers.get(layout.trigger_key(ns, name))
    for pids in process_ids:
        for pid in pids:
            with pytest.raises(KeyNotFoundError):
                await workflows.get(layout.workflow_latest_key(ns, pid))
