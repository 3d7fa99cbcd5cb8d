"""Variable scopes of one instance (Zeebe semantics).

Each element instance may hold local variables (``ElementInstance.vars``); the root scope
(key 1) holds the process variables. Reading walks from an element instance up to the root,
inner names shadowing outer ones. Writing with :func:`propagate` sets a variable in the
innermost scope, starting at a given element instance, where it already exists, else in the
root scope. Input mappings create local variables; output mappings propagate from the parent
(the mappings are evaluated by :mod:`natsflow_engine.runtime.expressions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from natsflow_engine.runtime.records import ElementInstance, InstanceState

__all__ = ["ROOT", "chain", "context_of", "propagate", "set_path"]

ROOT = 1


def chain(state: InstanceState, key: int) -> list[ElementInstance]:
    """Element instances from ``key`` up to the root, innermost first."""
    out = []
    eis = state.eis
    while key:
        ei = eis.get(key)
        if ei is None:
            break
        out.append(ei)
        key = ei.parent
    return out


def context_of(state: InstanceState, key: int) -> Mapping[str, Any]:
    """The variables visible from element instance ``key`` (a read-only view)."""
    layers = [ei.vars for ei in chain(state, key) if ei.vars]
    if not layers:
        return {}
    if len(layers) == 1:
        return layers[0]
    merged: dict[str, Any] = {}
    for layer in reversed(layers):
        merged.update(layer)
    return merged


def propagate(state: InstanceState, start: int, variables: Mapping[str, Any]) -> None:
    """Set each variable where it is already defined, searching from ``start`` upwards;
    variables found nowhere are created in the root scope."""
    if not variables:
        return
    scopes = chain(state, start)
    root = state.eis[ROOT]
    if root.vars is None:
        root.vars = {}
    for name, value in variables.items():
        for ei in scopes:
            if ei.vars is not None and name in ei.vars:
                ei.vars[name] = value
                break
        else:
            root.vars[name] = value


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in a dict, creating nested contexts as needed."""
    parts = path.split(".")
    node = target
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value
