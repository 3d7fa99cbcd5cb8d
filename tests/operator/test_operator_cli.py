"""``natsflow apply`` / ``natsflow delete``: the examples straight into a plain nats-server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import nats
from click.testing import CliRunner
from nats.js.errors import KeyNotFoundError, NotFoundError
from natsflow_engine import catalog, layout
from natsflow_engine.natsutil import list_keys
from natsflow_engine.runtime.definitions import ProcessRetention, get_latest
from natsflow_operator.cli import apply_cmd, delete_cmd

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "k8s"


def _state(url: str, tenant: str) -> dict[str, object]:
    """What the examples put into NATS, read with a fresh connection."""

    async def read() -> dict[str, object]:
        nc = await nats.connect(url)
        js = nc.jetstream()
        found: dict[str, object] = {}
        try:
            kv = await js.key_value(layout.BUCKET_WORKFLOWS)
            for pid in ("order-process", "refund-process"):
                try:
                    found[pid] = (await get_latest(kv, tenant, pid)).version
                except Exception:
                    found[pid] = None
            for task_type in ("charge-card", "fraud-review", "ship-order"):
                try:
                    info = await js.consumer_info(layout.STREAM_JOBS, layout.job_consumer(tenant, task_type))
                    found[task_type] = (info.config.max_ack_pending, info.config.max_deliver)
                except NotFoundError:
                    found[task_type] = None
            try:
                entry = await (await js.key_value(layout.BUCKET_TRIGGERS)).get(
                    layout.trigger_key(tenant, "order-created")
                )
                found["order-created"] = catalog.decode_trigger(entry.value or b"").stream
            except KeyNotFoundError:
                found["order-created"] = None
        finally:
            await nc.close()
        return found

    return asyncio.run(read())


def _retention(url: str, tenant: str, process_id: str) -> ProcessRetention | None:
    """The retention in a process's latest pointer (what every engine applies)."""

    async def read() -> ProcessRetention | None:
        nc = await nats.connect(url)
        try:
            kv = await nc.jetstream().key_value(layout.BUCKET_WORKFLOWS)
            return (await get_latest(kv, tenant, process_id)).retention
        finally:
            await nc.close()

    return asyncio.run(read())


def test_apply_examples_then_delete(nats_url: str, unique: str) -> None:
    runner = CliRunner()
    args = ["-f", str(EXAMPLES), "--nats-url", nats_url, "--tenant", unique]
    result = runner.invoke(apply_cmd, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"{unique}/workflow.natsflow.io/order-process created (order-process v1)" in lines
    assert (
        f"{unique}/taskdefinition.natsflow.io/charge-card created (consumer job_{unique}_charge-card)"
        in lines
    )
    assert any(line.startswith(f"{unique}/trigger.natsflow.io/order-created created") for line in lines)
    assert f"{unique}/configmap/refund-bpmn skipped" in lines
    assert (
        f"{unique}/workflow.natsflow.io/approval-process created "
        "(approval-process v1, form review-claim v1, form approve-refund v1)"
    ) in lines  # its form from the ConfigMap in the given files
    assert len(lines) == 11  # one line per object: 3 workflows, 3 taskdefs, 1 trigger, 2 configmaps, 2 secrets
    assert _retention(nats_url, unique, "approval-process") == ProcessRetention(live=86400.0, archive=2592000.0)
    assert _state(nats_url, unique) == {
        "order-process": 1,
        "refund-process": 1,
        "charge-card": (20, 4),
        "fraud-review": (4, 1),
        "ship-order": (32, 4),
        "order-created": catalog.capture_stream("shop.orders.created"),
    }

    again = runner.invoke(apply_cmd, [*args, "-o", "json"])
    assert again.exit_code == 0, again.output
    items = json.loads(again.stdout)["items"]
    assert {i["action"] for i in items if i["kind"] != "ConfigMap" and i["kind"] != "Secret"} == {"unchanged"}
    assert all(i["ok"] for i in items)

    gone = runner.invoke(delete_cmd, args)
    assert gone.exit_code == 0, gone.output
    assert f"{unique}/workflow.natsflow.io/refund-process retained" in gone.stdout.splitlines()
    assert _state(nats_url, unique) == {
        "order-process": None,
        "refund-process": 1,  # deletionPolicy: Retain
        "charge-card": None,
        "fraud-review": (4, 1),  # deletionPolicy: Retain
        "ship-order": None,
        "order-created": None,
    }


def test_apply_refuses_invalid_manifests(nats_url: str, unique: str, tmp_path: Path) -> None:
    bpmn = (
        (EXAMPLES / "order-workflow.yaml")
        .read_text()
        .replace('targetRef="order-done"/>', 'targetRef="x"/>', 1)
    )
    (tmp_path / "wf.yaml").write_text(bpmn)
    (tmp_path / "td.yaml").write_text(
        "apiVersion: natsflow.io/v1alpha1\nkind: TaskDefinition\nmetadata: {name: t}\nspec: {taskType: t, timeout: soon}\n"
    )
    result = CliRunner().invoke(apply_cmd, ["-f", str(tmp_path), "--nats-url", nats_url, "--tenant", unique])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(
        "workflow.natsflow.io/order-process invalid" in line and "line 18" in line for line in lines
    ), lines
    assert any("taskdefinition.natsflow.io/t invalid" in line and "timeout" in line for line in lines), lines
    assert _state(nats_url, unique)["order-process"] is None


def test_apply_does_not_import_kopf() -> None:
    code = (
        "import sys, natsflow_operator.cli, natsflow_operator.manifests, natsflow_operator.reconcile;"
        "assert 'kopf' not in sys.modules, 'kopf imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_group_options_reach_apply(nats_url: str, unique: str) -> None:
    """``natsflow --nats-url X --tenant T apply -f F`` uses the group's connection and tenant."""
    from natsflow.cli import cli

    wf = str(EXAMPLES / "order-workflow.yaml")
    result = CliRunner().invoke(cli, ["--nats-url", nats_url, "--tenant", unique, "apply", "-f", wf])
    assert result.exit_code == 0, result.output
    assert (
        result.stdout.strip().splitlines()[-1]
        == f"{unique}/workflow.natsflow.io/order-process created (order-process v1)"
    )


def _workflow(name: str, process_id: str = "order") -> str:
    bpmn = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" '
        'targetNamespace="http://bpmn.io/schema/bpmn">\n'
        f'<bpmn:process id="{process_id}" isExecutable="true">\n'
        '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="e"/>'
        '<bpmn:endEvent id="e"/>\n</bpmn:process>\n</bpmn:definitions>\n'
    )
    indented = "".join(f"    {line}\n" for line in bpmn.splitlines())
    return f"apiVersion: natsflow.io/v1alpha1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n  bpmn: |\n{indented}"


def _trigger(workflow: str) -> str:
    return (
        "apiVersion: natsflow.io/v1alpha1\nkind: Trigger\nmetadata: {name: orders-in}\n"
        f"spec: {{subject: shop.orders.in, workflowRef: {{name: {workflow}}}}}\n"
    )


def _latest(url: str, tenant: str, process_id: str) -> tuple[int, str | None] | None:
    async def read() -> tuple[int, str | None] | None:
        nc = await nats.connect(url)
        try:
            kv = await nc.jetstream().key_value(layout.BUCKET_WORKFLOWS)
            try:
                latest = await get_latest(kv, tenant, process_id)
            except Exception:
                return None
            return latest.version, latest.name
        finally:
            await nc.close()

    return asyncio.run(read())


def test_apply_after_renames_in_git(nats_url: str, unique: str, tmp_path: Path) -> None:
    """A Workflow object renamed in Git (same BPMN) takes its processes over: the Trigger naming
    the new object resolves, deleting the old object's file leaves them deployed. A process id
    renamed inside a Workflow undeploys the old process (its versions stay) so that
    ``workflowRef.name`` still picks one process."""
    runner = CliRunner()
    common = ["--nats-url", nats_url, "--tenant", unique]
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "wf.yaml").write_text(_workflow("orders-old"))
    assert runner.invoke(apply_cmd, ["-f", str(old), *common]).exit_code == 0
    assert _latest(nats_url, unique, "order") == (1, "orders-old")

    (new / "wf.yaml").write_text(_workflow("orders"))
    (new / "trigger.yaml").write_text(_trigger("orders"))
    result = runner.invoke(apply_cmd, ["-f", str(new), *common])
    assert result.exit_code == 0, result.output
    assert f"{unique}/workflow.natsflow.io/orders created (order v1)" in result.stdout.splitlines()
    assert _latest(nats_url, unique, "order") == (1, "orders")  # same version, new owner

    gone = runner.invoke(delete_cmd, ["-f", str(old), *common])
    assert gone.exit_code == 0, gone.output
    assert _latest(nats_url, unique, "order") == (1, "orders")  # the new object's process stays

    (new / "wf.yaml").write_text(_workflow("orders", process_id="order-v2"))
    result = runner.invoke(apply_cmd, ["-f", str(new), *common, "-o", "json"])
    assert result.exit_code == 0, result.output
    items = {i["kind"]: i for i in json.loads(result.stdout)["items"]}
    assert items["Workflow"]["action"] == "updated" and items["Trigger"]["ok"], items
    assert _latest(nats_url, unique, "order-v2") == (1, "orders")
    assert _latest(nats_url, unique, "order") is None  # undeployed; v1 stays for running instances

    async def versions() -> list[str]:
        nc = await nats.connect(nats_url)
        try:
            kv = await nc.jetstream().key_value(layout.BUCKET_WORKFLOWS)
            return sorted(await list_keys(kv, f"{unique}.>"))  # kv.keys() may end its listing early
        finally:
            await nc.close()

    assert asyncio.run(versions()) == [f"{unique}.order-v2.latest", f"{unique}.order-v2.v1", f"{unique}.order.v1"]
