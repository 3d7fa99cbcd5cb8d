"""/healthz follows the platform connection: 200 while it works or reconnects (a kicked
connection comes back and the engine keeps working), 503 with the reason once the server
closed it for good; SIGTERM is still a clean exit."""

from __future__ import annotations

import json
from pathlib import Path

import nats
from lifecycle_kit import Component, Platform, free_port, http_status, until
from natsflow_engine.api.client import ApiClient
from natsflow_engine.liveness import ConnectionWatch
from natsflow_engine.observability import HealthServer

ENDS_AT_ONCE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="quick" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f" sourceRef="start" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


async def test_healthz_fails_with_the_reason_once_the_connection_is_closed_for_good(acme: Platform) -> None:
    watch = ConnectionWatch("engine")
    nc = watch.attach(
        await nats.connect(
            acme.url,
            user_credentials=str(acme.creds_file),
            max_reconnect_attempts=-1,
            closed_cb=watch.on_closed,
        )
    )
    async with HealthServer("127.0.0.1", 0, liveness=watch.liveness.probe) as health:
        assert await http_status(health.port, "/healthz") == 200
        await acme.close_connections()
        await until(lambda: nc.is_closed, "connection closed by the server")
        assert await http_status(health.port, "/healthz") == 503
        assert watch.liveness.reason is not None
        assert "maximum account active connections exceeded" in watch.liveness.reason


async def _connections(acme: Platform) -> list[int]:
    """Client ids of the account's connections, as the server lists them."""
    async with acme.system() as sys_nc:
        reply = await sys_nc.request(
            "$SYS.REQ.SERVER.PING.CONNZ", json.dumps({"acc": acme.account.public}).encode(), timeout=5
        )
    return [c["cid"] for c in json.loads(reply.data)["data"].get("connections") or []]


async def _kick(acme: Platform, cid: int) -> None:
    async with acme.system() as sys_nc:
        ping = await sys_nc.request("$SYS.REQ.SERVER.PING", b"", timeout=5)
        server_id = json.loads(ping.data)["server"]["id"]
        await sys_nc.request(
            f"$SYS.REQ.SERVER.{server_id}.KICK", json.dumps({"cid": cid}).encode(), timeout=5
        )


async def test_a_kicked_engine_reconnects_and_keeps_working(acme: Platform, tmp_path: Path) -> None:
    port = free_port()
    args = ["engine", "--health-port", str(port), "--nats-url", acme.url, "--creds", str(acme.creds_file)]
    engine = await Component(args, tmp_path / "engine.log").start()
    try:
        await until(lambda: _ready(port), "engine ready")
        (cid,) = await _connections(acme)
        await _kick(acme, cid)
        await until(lambda: _reconnected(acme, cid), "engine connected again")
        await until(lambda: _ready(port), "engine ready again")
        assert await http_status(port, "/healthz") == 200 and engine.returncode is None
        nc = await acme.connect()
        try:
            api = ApiClient(nc, "default", timeout=20)
            await api.deploy(ENDS_AT_ONCE)
            started = await api.start("quick", wait=True)
            await until(lambda: _completed(api, started.instance), "instance completed after the kick")
        finally:
            await nc.close()
        assert engine.proc is not None
        engine.proc.terminate()
        assert await engine.exited() == 0, engine.output()
    finally:
        await engine.stop()


async def _ready(port: int) -> bool:
    return await http_status(port, "/readyz") == 200


async def _reconnected(acme: Platform, old: int) -> bool:
    found = await _connections(acme)
    return bool(found) and old not in found


async def _completed(api: ApiClient, instance: str) -> bool:
    return (await api.instance(instance)).state == "completed"


async def test_sigterm_is_a_clean_exit_even_with_the_connection_alive(acme: Platform, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("from natsflow.worker import Worker\napp = Worker()\n")
    worker = await Component(
        ["worker", str(app), "--nats-url", acme.url, "--creds", str(acme.creds_file)], tmp_path / "w.log"
    ).start()
    try:
        await until(lambda: "worker serving" in worker.output(), "worker serving")
        assert worker.proc is not None
        worker.proc.terminate()
        assert await worker.exited() == 0, worker.output()
        assert "closed for good" not in worker.output()
    finally:
        await worker.stop()
