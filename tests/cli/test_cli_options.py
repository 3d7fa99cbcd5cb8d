"""Global options on either side of the subcommand, one-line connection and port errors,
multi-file deploys, ``publish-message --correlation-key``, worker specs, the example's sample
variables."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_kit import Stack
from click.testing import CliRunner
from natsflow_engine import layout
from natsflow_engine.worker import Worker

from natsflow.cli import cli
from natsflow.cli.run import load_worker
from natsflow.errors import NatsflowError

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "order-fulfilment"

SIMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="{pid}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""

WAITS_FOR_MESSAGE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:message id="m" name="paid">
    <bpmn:extensionElements><zeebe:subscription correlationKey="=orderId" /></bpmn:extensionElements>
  </bpmn:message>
  <bpmn:process id="pay" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:intermediateCatchEvent id="wait"><bpmn:messageEventDefinition messageRef="m" /></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def natsflow(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The installed entry point in a child process (no CliRunner: exactly what a user sees)."""
    return subprocess.run(
        [sys.executable, "-c", "from natsflow.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_command_accepts_the_global_options_after_its_name() -> None:
    runner = CliRunner()
    for name, command in cli.commands.items():
        helptext = runner.invoke(cli, [name, "--help"]).output
        for option in ("--nats-url", "--creds", "--tenant"):
            assert option in helptext, f"natsflow {name} does not take {option}"
        assert command.name == name


async def test_global_options_work_on_either_side(stack: Stack, tmp_path: Path) -> None:
    model = tmp_path / "simple.bpmn"
    model.write_text(SIMPLE.format(pid="either"))
    runner = CliRunner()
    after = ["deploy", str(model), "--nats-url", stack.url, "--tenant", stack.tenant]
    result = await asyncio.to_thread(runner.invoke, cli, after)
    assert result.exit_code == 0, result.output
    before = ["--nats-url", stack.url, "--tenant", stack.tenant, "workflows", "-o", "json"]
    listed = json.loads((await asyncio.to_thread(runner.invoke, cli, before)).stdout)
    assert [w["process_id"] for w in listed] == ["either"]
    # the option after the name wins over the one before it
    mixed = ["--tenant", "someone-else", "workflows", "--tenant", stack.tenant, "-o", "json"]
    mixed_out = await asyncio.to_thread(runner.invoke, cli, ["--nats-url", stack.url, *mixed])
    assert [w["process_id"] for w in json.loads(mixed_out.stdout)] == ["either"]


@pytest.mark.parametrize("command", [["workflows"], ["engine", "--health-port", "0"], ["worker", "x:app"]])
def test_nats_unreachable_is_one_line_with_a_hint(command: list[str]) -> None:
    if command[0] == "worker":
        command = ["worker", str(EXAMPLE / "workers.py")]
    proc = natsflow("--nats-url", f"nats://127.0.0.1:{free_port()}", *command)
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert line.startswith("error: cannot connect to NATS at nats://127.0.0.1:"), line
    assert "natsflow dev" in line and "--nats-url" in line, line


def test_engine_and_trigger_server_default_to_different_health_ports() -> None:
    def default_port(name: str) -> object:
        return next(p.default for p in cli.commands[name].params if p.name == "health_port")

    assert default_port("engine") != default_port("trigger-server")


async def test_a_taken_health_port_is_one_line_naming_the_option(nats_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in ("engine", "trigger-server"):
            proc = await asyncio.to_thread(
                natsflow, "--nats-url", nats_url, command, "--health-port", str(port)
            )
            assert proc.returncode == 1, proc.stderr
            line = one_line(proc.stderr)
            assert f"port {port}" in line and "--health-port" in line and "in use" in line, line


async def test_deploy_of_several_files_names_the_failing_one(stack: Stack, tmp_path: Path) -> None:
    first, broken, last = tmp_path / "first.bpmn", tmp_path / "broken.bpmn", tmp_path / "last.bpmn"
    first.write_text(SIMPLE.format(pid="first"))
    broken.write_text(SIMPLE.format(pid="broken").replace('targetRef="end"', 'targetRef="nowhere"'))
    last.write_text(SIMPLE.format(pid="last"))
    result = await stack.invoke("deploy", str(first), str(broken), str(last))
    assert result.exit_code == 1
    message = str(result.exception)
    assert message.startswith(f"{broken}: "), message
    assert f"deployed before it: {first}" in message and f"not deployed: {last}" in message, message
    assert [w.process_id for w in await stack.api.workflows()] == ["first"]


async def test_publish_message_takes_a_correlation_key(stack: Stack, tmp_path: Path) -> None:
    model = tmp_path / "pay.bpmn"
    model.write_text(WAITS_FOR_MESSAGE)
    assert (await stack.invoke("deploy", str(model))).exit_code == 0
    started = await stack.invoke("start", "pay", "--vars", '{"orderId": "o-7"}')
    iid = started.stdout.strip()
    published = await stack.invoke(
        "publish-message", "paid", "--correlation-key", "o-7", "--vars", '{"ok": 1}'
    )
    assert published.exit_code == 0, published.output
    async with asyncio.timeout(10):
        while (view := await stack.api.instance(iid)).state != "completed":
            await asyncio.sleep(0.02)
    assert view.variables["ok"] == 1


def test_worker_specs_name_what_was_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    by_file = load_worker(str(EXAMPLE / "workers.py"))
    assert isinstance(by_file, Worker) and "check-stock" in by_file.task_types
    (tmp_path / "tasks_mod_xyz.py").write_text("from natsflow.worker import Worker\nmine = Worker()\n")
    monkeypatch.chdir(tmp_path)
    assert isinstance(load_worker("tasks_mod_xyz:mine"), Worker)
    with pytest.raises(NatsflowError, match=r"cannot import worker module no_such_mod_xyz .*workers\.py:app"):
        load_worker("no_such_mod_xyz:app")
    with pytest.raises(
        NatsflowError, match=r"worker file missing/tasks\.py not found \(tried .* as a file path\)"
    ):
        load_worker("missing/tasks.py:app")
    with pytest.raises(
        NatsflowError, match=r"'app' in module tasks_mod_xyz .* is not a natsflow.worker.Worker"
    ):
        load_worker("tasks_mod_xyz")


async def test_the_example_starts_with_its_sample_variables(stack: Stack) -> None:
    readme = (ROOT / "README.md").read_text()
    command = "natsflow start order-fulfilment --vars @examples/order-fulfilment/order.json"
    assert command in readme
    deployed = await stack.invoke("deploy", str(EXAMPLE / "order-fulfilment.bpmn"))
    assert deployed.exit_code == 0, deployed.output
    app = load_worker(str(EXAMPLE / "workers.py"))
    app.nc, app.tenant = stack.nc, stack.tenant
    await app.start()
    try:
        started = await stack.invoke("start", "order-fulfilment", "--vars", f"@{EXAMPLE / 'order.json'}")
        assert started.exit_code == 0, started.output
        iid = started.stdout.strip()
        async with asyncio.timeout(20):
            while (view := await stack.api.instance(iid)).state == "active":
                await asyncio.sleep(0.05)
    finally:
        await app.stop()
    assert view.state == "completed" and view.incidents == []
    assert layout.validate_tenant(stack.tenant) == stack.tenant
