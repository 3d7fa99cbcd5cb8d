"""Routes of the modeler: validate while drawing, simulate, export for Git or as a test.

None of them touches the tenant's instances: validation runs natsflow's parser here, a
simulation runs on its own embedded engine (:mod:`.simulation`), exports only produce text.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web
from nats.js.errors import BucketNotFoundError
from natsflow_engine import layout
from natsflow_engine.bpmn.model import Definitions
from natsflow_engine.catalog import TaskDefRecord, decode_taskdef
from natsflow_engine.errors import BpmnValidationError
from natsflow_engine.natsutil import list_keys
from natsflow_engine.runtime.definitions import parse_and_check

from natsflow_console.errors import BadRequest
from natsflow_console.export import k8s_name, pytest_module, workflow_yaml
from natsflow_console.keys import USER_KEY, nc_of
from natsflow_console.parameters import parameter_warnings
from natsflow_console.routes import Handler
from natsflow_console.routes import json_body as _body
from natsflow_console.routes import json_reply as _json
from natsflow_console.simulation import model_outline, parse_scenario, simulate_bounded

__all__ = ["ROUTES"]

MAX_NAME = 256
MAX_TASK_TYPES = 1000


def _source(body: dict[str, Any]) -> tuple[str, str | None]:
    source, name = body.get("source"), body.get("name")
    if not isinstance(source, str) or not source.strip():
        raise BadRequest("source must be the BPMN XML document")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise BadRequest(f"name must be a file name of at most {MAX_NAME} characters")
    return source, name


async def _parse(source: str, name: str | None) -> Definitions:
    return await asyncio.to_thread(parse_and_check, source, name=name)


async def validate(request: web.Request) -> web.StreamResponse:
    """natsflow's validator on a document being drawn: ``{valid, issues, warnings, processes,
    outline}`` (200 either way: an invalid model is an answer, not an error); ``warnings`` are the
    input mappings that do not fit their TaskDefinition's parameters (:mod:`.parameters`)."""
    source, name = _source(await _body(request))
    try:
        defs = await _parse(source, name)
    except BpmnValidationError as exc:
        issues = [{"element_id": i.element_id, "line": i.line, "message": i.message} for i in exc.errors]
        return _json({"valid": False, "issues": issues, "processes": [], "outline": None})
    processes = [{"id": p.id, "name": p.name, "executable": p.executable} for p in defs.processes.values()]
    issues = []
    if not any(p.executable for p in defs.processes.values()):
        issues.append({"element_id": None, "line": None, "message": 'no process has isExecutable="true"'})
    warnings = parameter_warnings(defs, await _taskdefs(request))
    return _json(
        {"valid": not issues, "issues": issues, "warnings": warnings, "processes": processes, "outline": model_outline(defs)}
    )


async def simulate(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    source, _ = _source(body)
    scenario = parse_scenario(body.get("scenario"))
    result = await simulate_bounded(source, scenario)
    return _json(result)


async def export_workflow(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    source, name = _source(body)
    config_map = body.get("config_map", False)
    if not isinstance(config_map, bool):
        raise BadRequest("config_map must be true or false")
    defs = await _parse(source, name)
    executable = [p.id for p in defs.processes.values() if p.executable]
    if not executable:
        raise BadRequest('no process has isExecutable="true": nothing to deploy')
    text = workflow_yaml(source, executable[0], config_map=config_map)
    return web.Response(
        text=text,
        content_type="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="{k8s_name(executable[0])}.workflow.yaml"'},
    )


async def export_pytest(request: web.Request) -> web.StreamResponse:
    """The scenario (run for one instance) as a pytest module using natsflow.testing."""
    body = await _body(request)
    source, _ = _source(body)
    scenario = parse_scenario(body.get("scenario"))
    scenario.instances = 1
    result = await simulate_bounded(source, scenario)
    text = pytest_module(source, scenario.variables, result)
    return web.Response(
        text=text,
        content_type="text/x-python",
        headers={"Content-Disposition": f'attachment; filename="test_{k8s_name(result.process_id).replace("-", "_")}.py"'},
    )


async def _taskdefs(request: web.Request) -> list[TaskDefRecord]:
    """The signed-in tenant's TaskDefinitions (at most :data:`MAX_TASK_TYPES`)."""
    tenant = request[USER_KEY].tenant
    try:
        kv = await nc_of(request).jetstream().key_value(layout.BUCKET_TASKDEFS)
    except BucketNotFoundError:
        return []
    keys = (await list_keys(kv, f"{tenant}.*"))[:MAX_TASK_TYPES]
    found = []
    for entry in await asyncio.gather(*(kv.get(key) for key in keys), return_exceptions=True):
        if isinstance(entry, BaseException) or not entry.value:
            continue  # removed meanwhile
        try:
            found.append(decode_taskdef(entry.value))
        except msgspec.DecodeError:
            continue
    return sorted(found, key=lambda t: t.task_type)


async def task_types(request: web.Request) -> web.StreamResponse:
    """The tenant's TaskDefinitions (job types the modeler offers):
    ``{task_types: [{task_type, name, parameters, results}]}``."""
    found = [
        {
            "task_type": t.task_type,
            "name": t.name,
            "parameters": msgspec.to_builtins(t.parameters),
            "results": msgspec.to_builtins(t.results),
        }
        for t in await _taskdefs(request)
    ]
    return _json({"task_types": found})


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/api/task-types", task_types),
    ("POST", "/api/validate", validate),
    ("POST", "/api/simulate", simulate),
    ("POST", "/api/export/workflow", export_workflow),
    ("POST", "/api/export/pytest", export_pytest),
]
