"""The offline part of the e2e suite, in every test run: the examples load, everything they
reference exists, and a Trigger message as docs/quickstart-kind.md publishes it runs the
example process to completion with the example workers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from natsflow_engine import catalog
from natsflow_engine.triggers.mapping import TriggerMapping

from natsflow.testing import ProcessTestEngine

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "e2e"))

from e2e_offline import example_problems, load_example, read_manifests, worker_paths  # noqa: E402


def test_every_reference_of_the_examples_exists() -> None:
    assert example_problems() == []


def test_the_e2e_loader_takes_every_example() -> None:
    example, manifests = load_example("tenant", "natsflow-worker:e2e")
    assert example.with_workers() == ["charge-card", "ship-order"]
    assert set(example.names("TaskDefinition")) == {"charge-card", "fraud-review", "ship-order"}
    assert {m["kind"] for m in manifests} >= {"Workflow", "TaskDefinition", "Trigger", "Secret", "ConfigMap"}


def quickstart_payloads() -> list[dict[str, Any]]:
    """The bodies docs/quickstart-kind.md publishes (``$i`` as 1) and the e2e suite's default."""
    page = (ROOT / "docs" / "quickstart-kind.md").read_text()
    bodies = re.findall(r'pub "\$0" "(\{.*?\})"', page)
    assert bodies, "the quickstart publishes no message"
    e2e = (ROOT / "e2e" / "test_e2e_workflows.py").read_text()
    default = re.search(r"NATSFLOW_E2E_PAYLOAD\", '(\{.*?\})'", e2e)
    assert default is not None
    return [json.loads(b.replace('\\"', '"').replace("$i", "1")) for b in bodies] + [
        json.loads(default.group(1))
    ]


def _manifest(kind: str) -> dict[str, Any]:
    (found,) = [d for d in read_manifests() if d["kind"] == kind]
    return found


@pytest.mark.parametrize("payload", quickstart_payloads(), ids=lambda p: ",".join(sorted(p)))
async def test_a_published_message_runs_the_example_process(
    payload: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _manifest("Trigger")["spec"]
    record = catalog.TriggerRecord(
        tenant="shop",
        name="order-created",
        subject=spec["subject"],
        stream="",
        consumer="c",
        process_id=spec["workflowRef"]["processId"],
        variables=spec["variables"],
        idempotency_header=spec["idempotencyKey"].get("header"),
    )
    mapping = TriggerMapping(record)
    variables = mapping.map_variables(mapping.context(json.dumps(payload).encode(), {}, spec["subject"]))
    assert all(value is not None for value in variables.values()), variables

    secret = next(
        d for d in read_manifests() if d["kind"] == "Secret" and d["metadata"]["name"] == "payment-api"
    )
    monkeypatch.setenv("PAYMENT_API_KEY", secret["stringData"]["key"])
    for path in worker_paths():
        monkeypatch.syspath_prepend(path)
    from tasks import fraud, payments

    workflow = next(d for d in read_manifests() if d["kind"] == "Workflow" and "bpmn" in d["spec"])
    async with ProcessTestEngine() as engine:
        assert record.process_id in await engine.deploy(workflow["spec"]["bpmn"])
        assert payments.app.task_types == ["charge-card"] and fraud.app.task_types == ["fraud-review"]
        engine.task("charge-card")(payments.charge_card)
        engine.task("fraud-review")(fraud.fraud_review)
        iid = await engine.start_instance(record.process_id, variables)
        await engine.wait_until_idle()
        snap = await engine.instance(iid)
    assert snap.state == "completed", snap
    assert snap.variables["paymentId"].startswith("pay-")
