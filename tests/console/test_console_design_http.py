"""The modeler's HTTP routes without a browser: validate, simulate, export (bad input too)."""

from __future__ import annotations

import yaml
from console_kit import EXAMPLE, Stack, approval, operator_token, viewer_token
from test_console_http import call

from natsflow.testing import ProcessTestEngine


def test_validate_answers_issues_at_elements_and_the_models_outline(stack: Stack, tenants: dict[str, str]) -> None:
    token = operator_token(tenants["alice"])
    status, good = call(stack, "POST", "/api/validate", token, {"source": EXAMPLE.read_text()})
    assert status == 200 and good["valid"] is True and good["issues"] == []
    assert good["outline"]["task_types"] == [
        "cancel-order", "charge-payment", "check-stock", "notify-customer", "reserve-shipment", "ship-order"
    ]
    broken = approval("v-broken").replace("=x &gt; 10", "=x &gt;&gt; ) 10")
    status, bad = call(stack, "POST", "/api/validate", token, {"source": broken, "name": "b.bpmn"})
    assert status == 200 and bad["valid"] is False
    assert {i["element_id"] for i in bad["issues"]} >= {"f_big", "gw"}
    status, _ = call(stack, "POST", "/api/validate", token, {"source": ""})
    assert status == 400


def test_a_viewer_validates_simulates_and_exports_but_cannot_deploy(stack: Stack, tenants: dict[str, str]) -> None:
    source_id = f"viewer-sim-{tenants['alice']}"
    source = approval(source_id)
    scenario = {"userTasks": {"approve": {"complete": {"x": 1}}}}
    for token in (viewer_token(tenants["alice"]), operator_token(tenants["alice"])):
        status, checked = call(stack, "POST", "/api/validate", token, {"source": source})
        assert status == 200 and checked["valid"] is True
        status, result = call(stack, "POST", "/api/simulate", token, {"source": source, "scenario": scenario})
        assert status == 200 and result["first"]["path"] == ["start", "approve", "gw", "end_small"], result
        status, text = call(stack, "POST", "/api/export/workflow", token, {"source": source})
        assert status == 200 and "kind: Workflow" in text
        status, text = call(stack, "POST", "/api/export/pytest", token, {"source": source, "scenario": scenario})
        assert status == 200 and "ProcessTestEngine" in text
    status, reply = call(stack, "POST", "/api/deploy", viewer_token(tenants["alice"]), {"source": source})
    assert status == 403 and reply["error"]["code"] == "forbidden"
    listed = call(stack, "GET", "/api/processes", operator_token(tenants["alice"]))[1]["processes"]
    assert source_id not in [p["process_id"] for p in listed]  # simulating deployed nothing
    status, reply = call(stack, "POST", "/api/deploy", operator_token(tenants["alice"]), {"source": source})
    assert status == 200 and [d["process_id"] for d in reply["deployed"]] == [source_id]


def test_simulate_runs_a_scenario_and_names_a_bad_field(stack: Stack, tenants: dict[str, str]) -> None:
    token = operator_token(tenants["alice"])
    scenario = {"variables": {"amount": 2}, "userTasks": {"approve": {"complete": {"x": 1}}}}
    status, result = call(stack, "POST", "/api/simulate", token, {"source": approval("sim-http"), "scenario": scenario})
    assert status == 200, result
    assert result["first"]["path"] == ["start", "approve", "gw", "end_small"]
    assert result["first"]["variables"] == {"amount": 2, "x": 1}
    assert [r["step"] for r in result["history"]] == [1, 2]
    status, body = call(
        stack, "POST", "/api/simulate", token, {"source": approval("sim-http"), "scenario": {"instances": "many"}}
    )
    assert status == 400 and body["error"]["message"].startswith("instances: a whole number")
    status, body = call(stack, "POST", "/api/simulate", token, {"source": approval("p"), "scenario": {"process": "nope"}})
    assert status == 400 and body["error"]["message"].startswith("process: one of the model's executable processes: p")


def test_the_exported_workflow_is_what_the_operator_reads(stack: Stack, tenants: dict[str, str]) -> None:
    from natsflow_operator.models import WorkflowSpec

    token = operator_token(tenants["alice"])
    source = approval("Export_Me")
    status, text = call(stack, "POST", "/api/export/workflow", token, {"source": source})
    assert status == 200
    [workflow] = list(yaml.safe_load_all(text))
    assert (workflow["apiVersion"], workflow["kind"], workflow["metadata"]) == (
        "natsflow.io/v1alpha1", "Workflow", {"name": "export-me"}
    )
    spec = WorkflowSpec.model_validate(workflow["spec"])
    assert spec.bpmn is not None and spec.bpmn.strip() == "\n".join(line.rstrip() for line in source.strip().splitlines())
    status, text = call(stack, "POST", "/api/export/workflow", token, {"source": source, "config_map": True})
    config_map, workflow = list(yaml.safe_load_all(text))
    assert config_map["kind"] == "ConfigMap" and "export-me.bpmn" in config_map["data"]
    spec = WorkflowSpec.model_validate(workflow["spec"])
    assert spec.bpmn_from is not None
    assert (spec.bpmn_from.config_map_key_ref.name, spec.bpmn_from.config_map_key_ref.key) == ("export-me", "export-me.bpmn")
    assert stack.run(_deploys(config_map["data"]["export-me.bpmn"])) == ["Export_Me"]


async def _deploys(source: str) -> list[str]:
    async with ProcessTestEngine() as engine:
        return await engine.deploy(source)


def test_export_pytest_returns_a_module(stack: Stack, tenants: dict[str, str]) -> None:
    token = operator_token(tenants["alice"])
    scenario = {"userTasks": {"approve": {"complete": {"x": 99}}}}
    status, text = call(stack, "POST", "/api/export/pytest", token, {"source": approval("exp"), "scenario": scenario})
    assert status == 200
    assert "async def test_exp_scenario() -> None:" in text
    assert "await complete(engine, iid, 'approve', {'x': 99})" in text
    assert "assert path == ['start', 'approve', 'gw', 'end_big']" in text
    compile(text, "exported.py", "exec")
