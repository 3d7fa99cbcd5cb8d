"""A task's input mappings checked against its TaskDefinition's declared parameters.

For every element that runs as a job (a ``zeebe:taskDefinition`` with a static type) whose type
declares ``parameters``, the modeler warns (at the element, never blocking a deploy) about:

- a required parameter no input mapping targets (a job sees every visible variable, but the
  TaskDefinition says a task of this type must map it);
- an input mapping whose target is not a declared parameter (a typo, or a stale model);
- a literal of another type than the parameter's: a static value (always a string) or a FEEL
  expression that reads no variable (``=5``, ``="eu"``, ``={a: 1}``), evaluated here.

A dotted target (``order.id``) maps into the parameter named by its first part; its type is not
checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from natsflow_engine.bpmn.expr import StaticExpr
from natsflow_engine.bpmn.model import Definitions, Expr, IoMapping
from natsflow_engine.catalog import ParameterRecord, TaskDefRecord
from natsflow_engine.errors import NatsflowError
from natsflow_engine.feel.api import CompiledExpression

__all__ = ["parameter_warnings"]

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
_NO_LITERAL = object()


def parameter_warnings(defs: Definitions, taskdefs: Iterable[TaskDefRecord]) -> list[dict[str, Any]]:
    """Warnings ``{element_id, message}`` of the executable processes, in document order."""
    declared = {t.task_type: t for t in taskdefs if t.parameters}
    warnings: list[dict[str, Any]] = []
    for process in defs.processes.values():
        if not process.executable:
            continue
        for node in process.nodes.values():
            task = getattr(node, "task", None)
            if task is None or not isinstance(task.type, StaticExpr):
                continue
            taskdef = declared.get(str(task.type.value))
            if taskdef is not None:
                inputs: tuple[IoMapping, ...] = getattr(node, "inputs", ())
                warnings += [{"element_id": node.id, "message": m} for m in _check(taskdef, inputs)]
    return warnings


def _check(taskdef: TaskDefRecord, inputs: tuple[IoMapping, ...]) -> list[str]:
    params: Mapping[str, ParameterRecord] = {p.name: p for p in taskdef.parameters}
    kind = taskdef.task_type
    found: list[str] = []
    mapped = set()
    for mapping in inputs:
        name, _, rest = mapping.target.partition(".")
        mapped.add(name)
        param = params.get(name)
        if param is None:
            known = ", ".join(sorted(params))
            found.append(f"input mapping target {name!r} is not a parameter of job type {kind!r} (its parameters: {known})")
            continue
        if rest or param.type not in _TYPES:
            continue
        value = _literal(mapping.source)
        if value is _NO_LITERAL or value is None:
            continue
        if not _is(value, param.type):
            found.append(
                f"input mapping {name!r} of job type {kind!r} is a {param.type}, "
                f"but its source {_shown(mapping.source)} is a {_type_name(value)}"
            )
    for param in taskdef.parameters:
        if param.required and param.name not in mapped:
            found.append(f"job type {kind!r} requires the parameter {param.name!r}: no input mapping targets it")
    return found


def _literal(source: Expr) -> Any:
    """The value of a source that reads no variable, else :data:`_NO_LITERAL`."""
    if isinstance(source, StaticExpr):
        return source.value
    if isinstance(source, CompiledExpression) and not source.variables:
        try:
            return source.evaluate({})
        except NatsflowError:  # now() without a clock, a failing built-in: not a literal here
            return _NO_LITERAL
    return _NO_LITERAL


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    return isinstance(value, _TYPES[kind])


def _type_name(value: Any) -> str:
    return next((name for name in _TYPES if _is(value, name)), type(value).__name__)


def _shown(source: Expr) -> str:
    text = source.source if isinstance(source, StaticExpr) else "=" + source.source
    return repr(text if len(text) <= 40 else text[:37] + "...")
