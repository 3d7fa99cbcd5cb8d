"""A natsflow stack with the console, run in a background thread (not a test module).

Browser tests use Playwright's sync API, which refuses to run inside an asyncio loop, so the
engine, API server and console live on their own loop in a thread; tests call coroutines on it
with :meth:`Stack.run`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from natsflow_console import Console, ConsoleSettings
from natsflow_console.auth import parse_users
from natsflow_engine.api.client import ApiClient
from natsflow_engine.api.server import ApiServer
from natsflow_engine.runtime.engine import Engine, EngineSettings

T = TypeVar("T")
ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "order-fulfilment" / "order-fulfilment.bpmn"
APPROVAL = (Path(__file__).parent / "models" / "approval.bpmn").read_text()


def approval(process_id: str) -> str:
    """The approval model (user task for group sales, then a gateway on x) under another id."""
    return APPROVAL.replace('id="approval"', f'id="{process_id}"').replace(
        'bpmnElement="approval"', f'bpmnElement="{process_id}"'
    )


def users_document(tenants: dict[str, str]) -> str:
    """Users: per tenant an operator (token ``op-<tenant>-token-0123456789``) and a viewer."""
    lines = ["users:"]
    for name, tenant in tenants.items():
        lines += [
            f"  - {{name: {name}, tenant: {tenant}, role: operator, groups: [sales], token: op-{tenant}-token-0123456789}}",
            f"  - {{name: {name}-viewer, tenant: {tenant}, role: viewer, token: view-{tenant}-token-0123456789}}",
        ]
    return "\n".join(lines) + "\n"


def operator_token(tenant: str) -> str:
    return f"op-{tenant}-token-0123456789"


def viewer_token(tenant: str) -> str:
    return f"view-{tenant}-token-0123456789"


class Stack:
    """nats connection, engine, API server and console on a private event loop."""

    def __init__(self, nats_url: str, tenants: dict[str, str]) -> None:
        self.nats_url = nats_url
        self.tenants = tenants
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="console-stack", daemon=True)
        self.nc: Client | None = None
        self.engine: Engine | None = None
        self.api_server: ApiServer | None = None
        self.console: Console | None = None
        self.url = ""

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> Stack:
        self.thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.nc = await nats.connect(self.nats_url)
        self.engine = await Engine(self.nc, EngineSettings(fetch_timeout=0.2)).start()
        self.api_server = await ApiServer(self.nc).start()
        users = parse_users(users_document(self.tenants))
        self.console = await Console(self.nc, users, ConsoleSettings(port=0)).start()
        self.url = self.console.url

    def api(self, tenant: str) -> ApiClient:
        assert self.nc is not None
        return ApiClient(self.nc, tenant, timeout=10.0)

    def stop(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    async def _stop(self) -> None:
        if self.console is not None:
            await self.console.stop()
        if self.api_server is not None:
            await self.api_server.stop()
        if self.engine is not None:
            await self.engine.stop(timeout=2.0)
        if self.nc is not None:
            await self.nc.close()

    async def until(self, check: Any, what: str, timeout: float = 15.0) -> Any:
        """Await ``check()`` until it returns something truthy (a correctness deadline)."""
        try:
            async with asyncio.timeout(timeout):
                while not (value := await check()):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"not within {timeout}s: {what}") from None
        return value


APPROVE_FORM = {
    "id": "approveForm",
    "type": "default",
    "schemaVersion": 16,
    "components": [
        {
            "id": "f_x",
            "key": "x",
            "label": "Amount approved",
            "type": "number",
            "validate": {"required": True},
        },
        {"id": "f_ok", "key": "approved", "label": "Approved", "type": "checkbox"},
        {"id": "f_note", "key": "note", "label": "Note", "type": "textfield"},
    ],
}


def approval_with_form(process_id: str) -> str:
    """The approval model whose user task has an embedded Camunda form (Camunda Modeler 8)."""
    import json
    from xml.sax.saxutils import escape

    form = escape(json.dumps(APPROVE_FORM))
    return (
        approval(process_id)
        .replace(
            '<zeebe:assignmentDefinition candidateGroups="sales" />',
            '<zeebe:assignmentDefinition candidateGroups="sales" />\n'
            '        <zeebe:formDefinition formKey="camunda-forms:bpmn:approveForm" />',
        )
        .replace(
            f'<bpmn:process id="{process_id}" name="Approval" isExecutable="true">',
            f'<bpmn:process id="{process_id}" name="Approval" isExecutable="true">\n'
            f"    <bpmn:extensionElements>\n"
            f'      <zeebe:userTaskForm id="approveForm">{form}</zeebe:userTaskForm>\n'
            f"    </bpmn:extensionElements>",
        )
    )


def approval_with_linked_form(process_id: str, form_id: str) -> str:
    """The approval model whose user task links a deployed form by id (Camunda 8.3+ style)."""
    return approval(process_id).replace(
        '<zeebe:assignmentDefinition candidateGroups="sales" />',
        '<zeebe:assignmentDefinition candidateGroups="sales" />\n'
        f'        <zeebe:formDefinition formId="{form_id}" />',
    )


FAILING = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="PID" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="charge" />
    <bpmn:serviceTask id="charge">
      <bpmn:extensionElements><zeebe:taskDefinition type="TYPE" retries="1" /></bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="charge" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def failing(process_id: str, task_type: str) -> str:
    """One service task (retries="1": one attempt) of ``task_type``, no diagram."""
    return FAILING.replace("PID", process_id).replace("TYPE", task_type)
