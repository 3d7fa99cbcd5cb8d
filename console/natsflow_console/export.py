"""What the modeler exports: a ``Workflow`` resource for Git, and a simulation as a pytest test.

The Workflow YAML embeds the BPMN (``spec.bpmn``) or, for documents over the inline limit or
by choice, references a ConfigMap that carries it (``spec.bpmnFrom.configMapKeyRef``), as the
operator reads them. The pytest test repeats what a simulation did to its first instance with
:class:`natsflow.testing.ProcessTestEngine`: the same job outcomes in the same order, the same
user task completions, clock moves, messages and signals, and asserts the same end.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from natsflow_console.simulation import START, SimulationResult

__all__ = ["INLINE_LIMIT", "k8s_name", "pytest_module", "workflow_yaml"]

INLINE_LIMIT = 102_400
"""The Workflow resource's limit for inline BPMN (``spec.bpmn``), characters."""


def k8s_name(text: str) -> str:
    """A DNS-1123 name from a process id (``Order_Fulfilment`` -> ``order-fulfilment``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return name or "workflow"


class _Literal(str):
    """A string dumped as a YAML block (``|``), so the BPMN stays readable in Git."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def workflow_yaml(source: str, process_id: str, *, config_map: bool = False, namespace: str | None = None) -> str:
    name = k8s_name(process_id)
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    # YAML block scalars cannot keep trailing spaces on a line or carriage returns
    text = "\n".join(line.rstrip() for line in source.replace("\r\n", "\n").split("\n")).strip("\n") + "\n"
    documents: list[dict[str, Any]] = []
    if config_map or len(text) > INLINE_LIMIT:
        key = f"{name}.bpmn"
        documents.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(metadata), "data": {key: _Literal(text)}}
        )
        spec: dict[str, Any] = {"bpmnFrom": {"configMapKeyRef": {"name": name, "key": key}}}
    else:
        spec = {"bpmn": _Literal(text)}
    documents.append({"apiVersion": "natsflow.io/v1alpha1", "kind": "Workflow", "metadata": metadata, "spec": spec})
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100_000)


def _ident(text: str) -> str:
    return re.sub(r"\W+", "_", text).strip("_").lower() or "process"


def pytest_module(source: str, variables: dict[str, Any], result: SimulationResult) -> str:
    """A pytest module that replays ``result`` (a one-instance simulation) with the test kit."""
    first = result.first
    lines = [
        f'"""The simulation of {result.process_id}, exported by the natsflow console: the same job',
        "outcomes, user task completions, clock moves and events, run by natsflow.testing.\"\"\"",
        "",
        "from __future__ import annotations",
        "",
        "from datetime import UTC, datetime, timedelta",
        "from typing import Any",
        "",
        "from natsflow.errors import BpmnError, JobFailure",
        "from natsflow.testing import ProcessTestEngine",
        "",
        f"MODEL = {source!r}",
        f"JOBS: dict[str, list[dict[str, Any]]] = {result.jobs!r}",
        "",
        "",
        "def handler(task_type: str) -> Any:",
        "    outcomes = list(JOBS[task_type])",
        "",
        "    async def handle(job: Any) -> dict[str, Any]:",
        "        outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]",
        '        if "error" in outcome:',
        '            error = outcome["error"]',
        '            raise BpmnError(error["code"], error["message"], error["variables"])',
        '        if "fail" in outcome:',
        '            raise JobFailure(outcome["fail"], retry=False)',
        '        result: dict[str, Any] = outcome["complete"]',
        "        return result",
        "",
        "    return handle",
        "",
        "",
        "async def complete(engine: ProcessTestEngine, iid: str, element_id: str, variables: dict[str, Any]) -> None:",
        "    [task] = [t for t in await engine.user_tasks(iid) if t.element_id == element_id][:1]",
        "    await engine.complete_user_task(task.id, variables)",
        "    await engine.wait_until_idle()",
        "",
        "",
        f"async def test_{_ident(result.process_id)}_scenario() -> None:",
        f"    start = datetime({START.year}, {START.month}, {START.day}, tzinfo=UTC)",
        "    async with ProcessTestEngine(start_time=start) as engine:",
        "        await engine.deploy(MODEL)",
        "        for task_type in JOBS:",
        "            engine.task(task_type)(handler(task_type))",
        f"        iid = await engine.start_instance({result.process_id!r}, {variables!r})",
        "        await engine.wait_until_idle()",
    ]
    for action in result.actions:
        match action.kind:
            case "user-task":
                lines.append(f"        await complete(engine, iid, {action.element_id!r}, {action.variables!r})")
            case "advance":
                lines.append(f"        await engine.advance_time(timedelta(seconds={action.seconds!r}))")
            case "message":
                lines.append(
                    f"        await engine.publish_message({action.name!r}, "
                    f"correlation_key={action.correlation_key!r}, variables={action.variables!r})"
                )
            case "signal":
                lines.append(f"        await engine.broadcast_signal({action.name!r}, variables={action.variables!r})")
    lines += [
        "        snap = await engine.instance(iid)",
        f"        assert snap.state == {first.state!r}",
        f"        assert snap.variables == {first.variables!r}",
        "        path = [e.element_id for e in snap.history if e.type == 'element-activated' and e.ei != 1]",
        f"        assert path == {first.path!r}",
        "",
    ]
    return "\n".join(lines)
