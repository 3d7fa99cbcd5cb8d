"""Which variables a step set, with bounded values, for the step's history record.

History records are what a replay shows; they carried variable names only, and the instance
record holds only the current values. :func:`snapshot` takes the variables before a step (one
shallow copy of each scope's dict), :func:`changes` compares them with the variables after it.
A value is recorded when its JSON has at most :data:`MAX_VALUE` bytes and the record's values
stay within :data:`MAX_TOTAL` bytes; any other change is recorded with its ``size`` only. A
scope that ended within the step is not reported (its variables are gone, not changed).
"""

from __future__ import annotations

from typing import Any

import msgspec

from natsflow_engine.runtime.records import InstanceState, VariableChange

__all__ = ["MAX_CHANGES", "MAX_TOTAL", "MAX_VALUE", "Snapshot", "changes", "snapshot"]

MAX_VALUE = 1024
"""Largest JSON encoding (bytes) of a value recorded in history."""
MAX_TOTAL = 8192
"""Largest sum of recorded values (bytes) in one history record."""
MAX_CHANGES = 256
"""Most variable changes listed in one history record (the others are left out)."""

Snapshot = dict[int, dict[str, Any]]
_MISSING = object()
_encode = msgspec.json.Encoder().encode


def snapshot(state: InstanceState | None) -> Snapshot:
    if state is None:
        return {}
    return {key: dict(ei.vars) for key, ei in state.eis.items() if ei.vars}


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(type(a) is type(b) and a == b)
    except Exception:  # an exotic value whose == raises: count it as changed
        return False


def changes(before: Snapshot, state: InstanceState) -> list[VariableChange]:
    found: list[VariableChange] = []
    budget = MAX_TOTAL
    for key in sorted(state.eis):
        now = state.eis[key].vars
        if not now:
            continue
        old = before.get(key, {})
        for name, value in now.items():
            if _same(old.get(name, _MISSING), value):
                continue
            if len(found) == MAX_CHANGES:
                return found
            try:
                size = len(_encode(value))
            except (TypeError, msgspec.EncodeError):
                size = MAX_VALUE + 1
            if size <= MAX_VALUE and size <= budget:
                budget -= size
                found.append(VariableChange(ei=key, name=name, value=value))
            else:
                found.append(VariableChange(ei=key, name=name, size=size))
    return found
