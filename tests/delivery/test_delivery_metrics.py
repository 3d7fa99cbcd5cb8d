"""Every documented metric moves on a real ``/metrics``, and the troubleshooting page's jq filter
finds an instance's engine log lines.

``natsflow engine`` and ``natsflow trigger-server`` run as child processes against the session's
nats-server; the test runs instances (completed, cancelled, with an incident) and trigger
messages (launched, duplicate, dead-lettered), scrapes both endpoints, then feeds the engine's
JSON log to jq with the filter from docs/troubleshooting.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from natsflow_engine import catalog, layout
from natsflow_engine.api.client import ApiClient
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "natsflow_"
ENGINE_METRICS = {
    "engine_steps_total",
    "engine_step_seconds",
    "engine_instances_total",
    "engine_incidents_total",
}
TRIGGER_METRICS = {
    "trigger_messages_received_total",
    "trigger_instances_launched_total",
    "trigger_duplicates_total",
    "trigger_messages_rejected_total",
}
OPERATOR_METRICS = {"jobs_pending", "autoscaler_decisions_total"}
"""Served by the operator; moved and read in tests/operator/test_operator_scaling.py."""

MODELS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:message id="m" name="never">
    <bpmn:extensionElements><zeebe:subscription correlationKey="=k" /></bpmn:extensionElements>
  </bpmn:message>
  <bpmn:process id="quick" isExecutable="true">
    <bpmn:startEvent id="s1" />
    <bpmn:sequenceFlow id="q1" sourceRef="s1" targetRef="e1" />
    <bpmn:endEvent id="e1" />
  </bpmn:process>
  <bpmn:process id="stuck" isExecutable="true">
    <bpmn:startEvent id="s2" />
    <bpmn:sequenceFlow id="b1" sourceRef="s2" targetRef="decide" />
    <bpmn:exclusiveGateway id="decide" />
    <bpmn:sequenceFlow id="b2" sourceRef="decide" targetRef="e2">
      <bpmn:conditionExpression>=missing &gt; 1</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:endEvent id="e2" />
  </bpmn:process>
  <bpmn:process id="waits" isExecutable="true">
    <bpmn:startEvent id="s3" />
    <bpmn:sequenceFlow id="w1" sourceRef="s3" targetRef="catch" />
    <bpmn:intermediateCatchEvent id="catch"><bpmn:messageEventDefinition messageRef="m" /></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="w2" sourceRef="catch" targetRef="e3" />
    <bpmn:endEvent id="e3" />
  </bpmn:process>
</bpmn:definitions>
"""


def documented_metrics() -> set[str]:
    """The names in docs/install.md's metrics table (a cell may list several)."""
    text = (ROOT / "docs" / "install.md").read_text()
    table = text.split("Metrics, all prefixed `natsflow_`:", 1)[1].split("\n\n", 2)[1]
    names: set[str] = set()
    for row in table.splitlines()[2:]:
        names.update(re.findall(r"`([a-z_]+)`", row.split("|")[1]))
    return names


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def samples(text: str, tenant: str) -> dict[str, float]:
    """Sum of the samples per sample name (``_total``, ``_count`` ...) over their labels, of
    ``tenant`` only where a metric has a tenant label: the components serve the whole session's
    nats-server, where other tests' tenants leave work behind."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("tenant", tenant) == tenant:
                found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


@pytest.fixture
def components(nats_url: str, tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """``natsflow engine`` and ``natsflow trigger-server`` with JSON logs; yields their health
    ports and the engine's log file; stops them with SIGTERM."""
    engine_port, trigger_port = free_port(), free_port()
    env = {**os.environ, "NATS_URL": nats_url, "NATSFLOW_LOG_FORMAT": "json", "NATSFLOW_LOG_LEVEL": "INFO"}
    env.pop("NATSFLOW_HEALTH_PORT", None)
    log_file = tmp_path / "engine.log"
    cli = [sys.executable, "-c", "from natsflow.cli import main; main()"]
    with log_file.open("w") as engine_log, (tmp_path / "triggers.log").open("w") as trigger_log:
        procs = [
            subprocess.Popen([*cli, "engine", "--health-port", str(engine_port)], env=env, stderr=engine_log),
            subprocess.Popen(
                [*cli, "trigger-server", "--health-port", str(trigger_port)], env=env, stderr=trigger_log
            ),
        ]
        try:
            yield engine_port, trigger_port, log_file
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def until(check, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """Poll ``check()`` (a sync callable run in a thread) until it is truthy (a generous
    deadline: the suite runs on a loaded machine, and the components are child processes)."""
    try:
        async with asyncio.timeout(timeout):
            while not (value := await asyncio.to_thread(check)):
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"{what} (within {timeout}s)") from None
    return value


@pytest.mark.timeout(300)
async def test_every_documented_metric_moves_and_logs_carry_the_instance(
    components: tuple[int, int, Path], nc: Client, unique: str
) -> None:
    engine_port, trigger_port, log_file = components
    documented = documented_metrics()
    assert documented == ENGINE_METRICS | TRIGGER_METRICS | OPERATOR_METRICS, documented
    operator_test = (ROOT / "tests" / "operator" / "test_operator_scaling.py").read_text()
    assert all(f"natsflow_{name}" in operator_test for name in OPERATOR_METRICS)

    engine_url, trigger_url = f"http://127.0.0.1:{engine_port}", f"http://127.0.0.1:{trigger_port}"
    for url in (engine_url, trigger_url):
        await until(lambda url=url: get(f"{url}/readyz")[0] == 200, f"{url}/readyz never answered 200")

    tenant, api = unique, ApiClient(nc, unique)
    await api.deploy(MODELS, name="metrics.bpmn")
    await api.start("quick", {})
    stuck = (await api.start("stuck", {})).instance
    waiting = (await api.start("waits", {"k": "x"}, wait=True)).instance  # exists before the cancel
    await api.cancel(waiting, "test")

    kv = await nc.jetstream().key_value(layout.BUCKET_TRIGGERS)
    record = catalog.TriggerRecord(
        tenant=tenant,
        name="orders",
        subject=f"metrics.{unique}.orders",
        stream="",
        consumer=catalog.trigger_consumer(tenant, "orders"),
        process_id="quick",
        idempotency_expression="payload.id",
    )
    await kv.put(layout.trigger_key(tenant, "orders"), catalog.encode_record(record))
    js = nc.jetstream()

    async with asyncio.timeout(60):  # the capture stream appears once a runner bound the trigger
        while True:
            try:
                await js.stream_info(catalog.capture_stream(record.subject))
                break
            except Exception:
                await asyncio.sleep(0.1)
    for body in (b'{"id": "a"}', b'{"id": "a"}', b"{not json"):
        await js.publish(record.subject, body)

    expected = {f"{PREFIX}{name}" for name in ENGINE_METRICS | TRIGGER_METRICS}
    expected = {n.replace("engine_step_seconds", "engine_step_seconds_count") for n in expected}

    totals: dict[str, float] = {}

    def moved() -> bool:
        totals.clear()
        for url in (engine_url, trigger_url):
            status, text = get(f"{url}/metrics")
            assert status == 200, f"{url}/metrics answered {status}"
            for name, value in samples(text, tenant).items():
                totals[name] = totals.get(name, 0.0) + value
        return all(totals.get(n, 0.0) > 0 for n in expected)

    try:
        await until(moved, "metrics did not move")
    except AssertionError:
        still = sorted(n for n in expected if not totals.get(n))
        raise AssertionError(f"documented metrics that never moved: {still}; {totals}") from None
    assert totals[f"{PREFIX}engine_incidents_total"] == 1
    assert totals[f"{PREFIX}trigger_duplicates_total"] == 1
    assert totals[f"{PREFIX}trigger_messages_rejected_total"] == 1
    _, trigger_text = get(f"{trigger_url}/metrics")
    assert f"# TYPE {PREFIX}trigger_messages_received_total counter" in trigger_text

    # the troubleshooting page's filter, with this tenant and instance
    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    jq_filter = re.search(r"\| jq (-\w+) '([^']+)'", page)
    assert jq_filter is not None
    flags, program = jq_filter.group(1), jq_filter.group(2)
    program = program.replace('"shop"', json.dumps(tenant)).replace('"<id>"', json.dumps(stuck))
    jq = shutil.which("jq")
    if jq is None:
        pytest.skip("jq is not installed")

    def incident_logged() -> list[dict[str, object]]:
        with log_file.open() as lines_in:
            out = subprocess.run(
                [jq, flags, program], stdin=lines_in, capture_output=True, text=True, check=True
            )
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        return [line for line in lines if line.get("element") == "decide"]

    found = await until(incident_logged, "no engine log line of the instance carries its element")
    assert found[0]["level"] == "warning" and "incident" in str(found[0]["message"])
