"""Every long-running command exits non-zero when the server closes its NATS connection for
good, instead of running on as a zombie that answers /healthz with 200 and does nothing.

The server closes the connections of the account with an ``-ERR`` (its connection limit set to
0): nats-py never reconnects after that, whatever ``max_reconnect_attempts`` says."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from lifecycle_kit import DEADLINE, Component, Platform, free_port, http_status, until

WORKER_APP = """
from natsflow.worker import Worker

app = Worker()


@app.task("noop")
async def noop(job):
    return None
"""


def _natsflow(acme: Platform, *args: str) -> list[str]:
    return [*args, "--nats-url", acme.url, "--creds", str(acme.creds_file), "--tenant", "acme"]


async def _ready_on(port: int) -> bool:
    return await http_status(port, "/readyz") == 200


@pytest.mark.parametrize("command", ["engine", "trigger-server"])
async def test_a_server_with_health_exits_non_zero(acme: Platform, tmp_path: Path, command: str) -> None:
    port = free_port()
    component = await Component(
        _natsflow(acme, command, "--health-port", str(port)), tmp_path / f"{command}.log"
    ).start()
    try:
        await until(lambda: _ready_on(port), f"{command} ready")
        assert await http_status(port, "/healthz") == 200
        await acme.close_connections()
        code = await component.exited()
        assert code != 0
        assert "closed" in component.output() and "maximum account active connections" in component.output()
    finally:
        await component.stop()


async def test_a_worker_exits_non_zero(acme: Platform, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(WORKER_APP)
    component = await Component(_natsflow(acme, "worker", str(app)), tmp_path / "worker.log").start()
    try:
        await until(lambda: "worker serving" in component.output(), "worker serving")
        await acme.close_connections()
        assert await component.exited() != 0
        assert "maximum account active connections" in component.output()
    finally:
        await component.stop()


async def test_the_console_exits_non_zero(acme: Platform, tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": [{"name": "ann", "tenant": "acme", "token": "t" * 32}]}))
    component = await Component(
        _natsflow(acme, "console", "--port", "0", "--users", str(users)), tmp_path / "console.log"
    ).start()
    try:
        await until(lambda: "natsflow console on" in component.output(), "console serving")
        await acme.close_connections()
        assert await component.exited() != 0
        assert "maximum account active connections" in component.output()
    finally:
        await component.stop()


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


async def test_dev_exits_non_zero_when_its_nats_server_dies(tmp_path: Path) -> None:
    component = await Component(["dev", "--port", "0", "--console-port", "0"], tmp_path / "dev.log").start()
    assert component.proc is not None
    try:
        await until(lambda: "console on" in component.output(), "dev up")
        (server_pid,) = _children(component.proc.pid)
        os.kill(server_pid, signal.SIGKILL)
        assert await component.exited(DEADLINE) != 0
        assert "nats-server" in component.output() and "exited" in component.output()
    finally:
        await component.stop()
