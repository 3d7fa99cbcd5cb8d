"""Migrations of the instance state record: older versions are brought forward on read.

Instances in flight outlive an upgrade, so every record version the engine ever wrote stays
readable. A record carries its version in ``v`` (absent: version 1).
:func:`natsflow_engine.runtime.records.decode_state` decodes the current version directly and
hands anything older to :func:`upgrade`, which applies the steps below in order, on the
record's JSON object, until it has the current layout. The next write stores the current
version. Each version has golden records under ``tests/golden/<version>/``, captured from the
code that wrote it, and ``tests/engine/test_record_migration.py`` continues each of them to
completion.

This module works on plain JSON objects, the one form every version shares, and imports
nothing from the runtime.

Versions:

1. Kind-specific details of an element instance in an untyped ``data`` object (``flow``,
   ``phase``, ``listener``, ``timer``/``due``/``cycle``, ``msg``/``key``, ``sig``,
   ``user_task``, ``child``, ``body`` with ``n``/``done``/``next``/``seq``/``items``/``out``,
   ``iteration``, ``comp``, ``comp_queue``, ``comp_for``) and the job key in ``job``.
2. Typed: ``wait`` (job, user task, called instance, timer, message or signal: a tagged
   union), ``role`` (listener, loop body, iteration, compensation throw or handler), ``flow``,
   ``phase`` and ``compensable`` as fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from natsflow_engine.errors import RecordMigrationError

__all__ = ["CURRENT", "RecordMigrationError", "upgrade"]

JsonObject = dict[str, Any]
"""A decoded JSON object of some record version."""

CURRENT = 2


def _v1_element(ei: JsonObject) -> JsonObject:
    data: JsonObject = ei.pop("data", None) or {}
    out = dict(ei)
    job = out.pop("job", None)
    waits: list[JsonObject] = []
    if job:
        waits.append({"w": "job", "key": job})
    if "user_task" in data:
        waits.append({"w": "user-task", "task": data["user_task"]})
    if "child" in data:
        waits.append({"w": "child", "child": data["child"]})
    if "timer" in data:
        timer: JsonObject = {"w": "timer", "timer": data["timer"], "due": data.get("due", "")}
        if data.get("cycle") is not None:
            timer["cycle"] = data["cycle"]
        waits.append(timer)
    if "msg" in data:
        waits.append({"w": "message", "name": data["msg"], "key": data.get("key", "")})
    if "sig" in data:
        waits.append({"w": "signal", "name": data["sig"]})
    if len(waits) > 1:
        raise RecordMigrationError(f"element instance {ei.get('key')} waits for {len(waits)} things at once")
    if waits:
        out["wait"] = waits[0]
    roles: list[JsonObject] = []
    if data.get("listener"):
        roles.append({"r": "listener", "of": data["listener"]})
    if data.get("body"):
        body: JsonObject = {
            "r": "loop-body",
            "n": data.get("n"),
            "done": data.get("done", 0),
            "next": data.get("next", 0),
            "seq": bool(data.get("seq", False)),
            "items": data.get("items", []),
        }
        if "out" in data:
            body["out"] = data["out"]
        roles.append(body)
    if data.get("iteration") is not None:
        roles.append({"r": "iteration", "index": data["iteration"]})
    if "comp_queue" in data:
        roles.append({"r": "compensation-throw", "queue": data["comp_queue"]})
    if data.get("comp_for"):
        roles.append({"r": "compensation-handler", "thrower": data["comp_for"]})
    if len(roles) > 1:
        raise RecordMigrationError(f"element instance {ei.get('key')} has {len(roles)} roles at once")
    if roles:
        out["role"] = roles[0]
    for name in ("flow", "phase"):
        if data.get(name) is not None:
            out[name] = data[name]
    if data.get("comp"):
        out["compensable"] = data["comp"]
    return out


def _v1_to_v2(record: JsonObject) -> JsonObject:
    eis = record.get("eis") or {}
    if not isinstance(eis, dict):
        raise RecordMigrationError("a version 1 record whose element instances are not an object")
    return {**record, "v": 2, "eis": {key: _v1_element(dict(ei)) for key, ei in eis.items()}}


_STEPS: dict[int, Callable[[JsonObject], JsonObject]] = {1: _v1_to_v2}


def upgrade(record: JsonObject) -> JsonObject:
    """Bring a decoded instance record of any older version to the current layout."""
    if not isinstance(record, dict):
        raise RecordMigrationError("an instance record must be a JSON object")
    version = record.get("v", 1)
    if not isinstance(version, int) or version > CURRENT or version < 1:
        raise RecordMigrationError(f"instance record version {version!r} is unknown (this engine reads 1 to {CURRENT})")
    while version < CURRENT:
        record = _STEPS[version](record)
        version = record["v"]
    return record
