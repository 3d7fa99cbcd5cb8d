"""OpenTelemetry: one trace from the API launch through engine steps, the job and its worker,
with W3C trace context in the NATS headers (collected by the SDK's in-memory exporter)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from api_kit import Api
from natsflow_engine import tracing
from natsflow_engine.worker import Job, Worker
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ONE_TASK = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="traced" isExecutable="true">
    <bpmn:startEvent id="begin" />
    <bpmn:sequenceFlow id="f1" sourceRef="begin" targetRef="charge" />
    <bpmn:serviceTask id="charge"><bpmn:extensionElements>
      <zeebe:taskDefinition type="charge-{tenant}" /></bpmn:extensionElements></bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="charge" targetRef="finish" />
    <bpmn:endEvent id="finish" />
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_trace_follows_an_instance_from_the_api_through_the_worker(
    api: Api, spans: InMemorySpanExporter
) -> None:
    await api.client.deploy(ONE_TASK.replace("{tenant}", api.tenant))
    worker = Worker(tenant=api.tenant, nc=api.nc)
    @worker.task(f"charge-{api.tenant}")
    async def charge(job: Job) -> dict[str, int]:
        return {"charged": 1}

    await worker.start()
    try:
        started = await api.client.start("traced", {})
        async with asyncio.timeout(20):
            while (await api.client.instance(started.instance)).state != "completed":
                await asyncio.sleep(0.05)
            while not any(s.name == "step job-completed" for s in spans.get_finished_spans()):
                await asyncio.sleep(0.05)
    finally:
        await worker.stop()

    finished = [s for s in spans.get_finished_spans() if s.context is not None]
    by_name = {s.name: s for s in finished}
    start = by_name["api instance-start"]
    trace_id = start.context.trace_id if start.context is not None else 0
    launch, job, completed = by_name["step launch"], by_name[f"job charge-{api.tenant}"], by_name["step job-completed"]
    assert {s.context.trace_id for s in (launch, job, completed) if s.context is not None} == {trace_id}
    assert _parent(launch) == start.context.span_id if start.context is not None else False
    assert _parent(job) == launch.context.span_id if launch.context is not None else False
    assert _parent(completed) == job.context.span_id if job.context is not None else False
    elements = {(s.name, s.attributes.get("natsflow.event") if s.attributes else None, _parent(s)) for s in finished}
    assert ("begin", "element-activated", launch.context.span_id if launch.context else 0) in elements
    assert ("charge", "job-created", launch.context.span_id if launch.context else 0) in elements
    assert ("finish", "element-completed", completed.context.span_id if completed.context else 0) in elements


async def test_tracing_off_adds_no_headers() -> None:
    tracing.disable()
    assert tracing.inject({"Nats-Msg-Id": "x"}) == {"Nats-Msg-Id": "x"}
    with tracing.span("nothing") as span:
        assert span is None
    assert not tracing.configure_from_env("natsflow-test", {})
    assert not tracing.configure_from_env("natsflow-test", {"OTEL_TRACES_EXPORTER": "none"})
