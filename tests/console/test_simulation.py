"""Simulation with mocked jobs, scripted user tasks and events on a virtual clock: the library,
``natsflow simulate``, and the pytest module a simulation exports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from console_kit import EXAMPLE, approval
from natsflow_console.simulation import ScenarioError, parse_scenario, simulate

from natsflow.cli import cli

pytestmark = pytest.mark.timeout(120)
ORDER = json.loads((EXAMPLE.parent / "order.json").read_text())
WAIT = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:message id="m_paid" name="paid"><bpmn:extensionElements>
    <zeebe:subscription correlationKey="=orderId" /></bpmn:extensionElements></bpmn:message>
  <bpmn:process id="payment" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:receiveTask id="wait" messageRef="m_paid" />
    <bpmn:boundaryEvent id="too_late" attachedToRef="wait">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT2H</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="paid" />
    <bpmn:endEvent id="paid" />
    <bpmn:sequenceFlow id="f3" sourceRef="too_late" targetRef="expired" />
    <bpmn:endEvent id="expired" />
  </bpmn:process>
</bpmn:definitions>
"""


def declined() -> dict[str, Any]:
    return {
        "variables": ORDER,
        "tasks": {
            "check-stock": {"complete": {"inStock": True}},
            "charge-payment": {"error": {"code": "PAYMENT_DECLINED", "message": "card declined"}},
        },
    }


async def test_a_bpmn_error_from_a_mock_takes_the_error_path() -> None:
    result = await simulate(EXAMPLE.read_text(), parse_scenario(declined()))
    assert result.first.state == "completed"
    assert result.first.path[-2:] == ["cancel_order", "end_cancelled"]
    assert "payment_declined" in result.first.path and "end_fulfilled" not in result.first.path
    assert result.first.variables["total"] == 63
    assert result.jobs["charge-payment"] == [
        {"error": {"code": "PAYMENT_DECLINED", "message": "card declined", "variables": {}}}
    ]
    steps = [record["step"] for record in result.history]
    assert steps == list(range(1, len(steps) + 1))
    assert {"ei": 1, "name": "inStock", "value": True} in [v for r in result.history for v in r.get("variables", [])]


async def test_messages_and_timers_on_the_virtual_clock() -> None:
    paid = {"variables": {"orderId": "o-1"}, "events": [{"at": "PT1H", "message": {"name": "paid", "correlationKey": "o-1"}}]}
    result = await simulate(WAIT, parse_scenario(paid))
    assert result.first.path == ["start", "wait", "paid"]
    assert result.virtual_time.startswith("2026-01-01T01:00:00")
    late = {"variables": {"orderId": "o-1"}, "events": [{"at": "PT3H", "message": {"name": "paid", "correlationKey": "o-1"}}]}
    result = await simulate(WAIT, parse_scenario(late))
    assert result.first.path == ["start", "wait", "too_late", "expired"]
    by_schedule = await simulate(WAIT, parse_scenario({"variables": {"orderId": "o-2"}}))
    assert by_schedule.first.path == ["start", "wait", "too_late", "expired"]
    assert by_schedule.virtual_time.startswith("2026-01-01T02:00:00")


async def test_many_instances_with_random_choices_give_path_frequencies() -> None:
    scenario = {
        "variables": ORDER,
        "instances": 30,
        "seed": 7,
        "tasks": {
            "check-stock": [{"complete": {"inStock": True}, "weight": 2}, {"complete": {"inStock": False}}],
            "charge-payment": [{"complete": {}}, {"error": {"code": "PAYMENT_DECLINED"}}],
        },
    }
    result = await simulate(EXAMPLE.read_text(), parse_scenario(scenario))
    counts = result.elements
    assert result.instances == 30 and result.states == {"completed": 30}
    assert counts["start"] == 30
    assert counts.get("end_fulfilled", 0) + counts.get("end_cancelled", 0) + counts.get("end_backordered", 0) == 30
    assert counts["end_backordered"] > 0 and counts["end_fulfilled"] > 0 and counts["end_cancelled"] > 0
    assert counts["fulfil"] == 30 - counts["end_backordered"]
    again = await simulate(EXAMPLE.read_text(), parse_scenario(scenario))
    assert again.elements == counts  # the seed repeats the choices


async def test_user_tasks_are_completed_by_the_script() -> None:
    scenario = {"variables": {"amount": 1}, "userTasks": {"approve": {"complete": {"x": 50}}}}
    result = await simulate(approval("sim-approval"), parse_scenario(scenario))
    assert result.first.path == ["start", "approve", "gw", "end_big"]
    assert result.first.variables == {"amount": 1, "x": 50}
    assert [a.kind for a in result.actions] == ["user-task"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "scenario: a mapping"),
        ({"instance": 3}, "instance: unknown field"),
        ({"instances": 0}, "instances: a whole number from 1 to 10000"),
        ({"tasks": {"a": {"complete": {}, "error": {"code": "E"}}}}, "tasks.a: exactly one of complete, error, fail"),
        ({"tasks": {"a": [{"complete": {}}, {"error": {}}]}}, "tasks.a[1].error.code: a string"),
        ({"tasks": {"a": {"complete": [1]}}}, "tasks.a.complete: a mapping"),
        ({"tasks": {"a": {"fail": "x", "weight": -1}}}, "tasks.a.weight: a positive number"),
        ({"userTasks": {"u": {"fail": "no"}}}, "userTasks.u: complete"),
        ({"events": [{"message": {"name": "m"}}]}, "events[0].at: required"),
        ({"events": [{"at": "soon"}]}, "events[0].at: an ISO 8601 duration"),
        ({"events": [{"at": "PT1H", "message": {}}]}, "events[0].message.name: a string"),
        ({"until": "P99999D"}, "until: a duration from 0 to 10 years"),
    ],
)
def test_a_bad_scenario_names_the_field(document: Any, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(document)
    assert str(caught.value).startswith(message), str(caught.value)


def test_natsflow_simulate_prints_the_path_and_variables(tmp_path: Path) -> None:
    scenario = tmp_path / "declined.yaml"
    scenario.write_text(json.dumps(declined()))
    result = CliRunner().invoke(cli, ["simulate", str(EXAMPLE), "--scenario", str(scenario)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("order-fulfilment: 1 instance(s): 1 completed")
    assert lines[1].startswith("path: start -> compute_total -> check_stock") and lines[1].endswith("end_cancelled")
    assert lines[2] == "state: completed"
    assert json.loads(lines[3].removeprefix("variables: "))["inStock"] is True
    as_json = CliRunner().invoke(cli, ["simulate", str(EXAMPLE), "--scenario", str(scenario), "-o", "json"])
    assert json.loads(as_json.stdout)["first"]["path"][-1] == "end_cancelled"


def test_natsflow_simulate_refuses_a_bad_scenario_in_one_line(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("tasks:\n  charge-payment:\n    error: {message: no code}\n")
    result = CliRunner().invoke(cli, ["simulate", str(EXAMPLE), "--scenario", str(scenario)])
    assert result.exit_code == 1
    assert result.output == f"error: {scenario}: tasks.charge-payment.error.code: a string of 1 to 256 characters\n"
    scenario.write_text("tasks: [unclosed\n")
    result = CliRunner().invoke(cli, ["simulate", str(EXAMPLE), "--scenario", str(scenario)])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"error: {scenario}: not YAML or JSON")


def test_the_exported_pytest_module_passes(tmp_path: Path) -> None:
    scenario = tmp_path / "declined.json"
    scenario.write_text(json.dumps({**declined(), "events": [{"at": "PT5M"}]}))
    exported = tmp_path / "test_exported_order.py"
    result = CliRunner().invoke(
        cli, ["simulate", str(EXAMPLE), "--scenario", str(scenario), "--export-test", str(exported)]
    )
    assert result.exit_code == 0, result.output
    text = exported.read_text()
    assert "from natsflow.testing import ProcessTestEngine" in text
    assert "timedelta(seconds=300.0)" in text
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", str(exported)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=110,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
