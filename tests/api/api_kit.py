"""Models and types shared by the API tests (not a test module)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client
from natsflow_engine.api.client import ApiClient
from natsflow_engine.api.server import ApiServer
from natsflow_engine.runtime.engine import Engine

REVIEW = (Path(__file__).parents[1] / "models" / "review.bpmn").read_text()
"""The review process both the API and CLI tests use: user task, then a gateway on x."""

INVALID = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="broken" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="nowhere" />
  </bpmn:process>
</bpmn:definitions>
"""


WAITER = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:message id="m_paid" name="paid"><bpmn:extensionElements>
    <zeebe:subscription correlationKey="=orderId" /></bpmn:extensionElements></bpmn:message>
  <bpmn:process id="waiter" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:intermediateCatchEvent id="wait"><bpmn:messageEventDefinition messageRef="m_paid" />
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""
"""A process waiting for message ``paid`` correlated by the variable ``orderId``."""


@dataclass
class Api:
    client: ApiClient
    server: ApiServer
    engine: Engine
    nc: Client
    tenant: str


async def bounded_stop(stopping: Awaitable[None], what: str, limit: float = 20.0) -> None:
    """Await a stop; if it hangs, print every task's stack (diagnosis) and fail."""
    try:
        async with asyncio.timeout(limit):
            await stopping
    except TimeoutError:
        for task in asyncio.all_tasks():
            print(f"--- {task.get_name()}", file=sys.stderr)
            task.print_stack(limit=8, file=sys.stderr)
        raise AssertionError(f"{what} did not stop within {limit}s") from None
