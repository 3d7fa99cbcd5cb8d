"""The scenario of a simulation: a JSON or YAML document, parsed into typed values.

Every value is bounded and checked here; a bad one is refused with a :class:`ScenarioError`
whose message starts with the field's path (``tasks.ship[1].error.code: …``). The format is
described in :mod:`natsflow_console.simulation` and docs/design-and-simulate.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import isodate
from natsflow_engine.errors import InvalidInputError

__all__ = [
    "MAX_EVENTS",
    "MAX_INSTANCES",
    "MAX_UNTIL",
    "START",
    "Mock",
    "Scenario",
    "ScenarioError",
    "ScenarioEvent",
    "parse_duration",
    "parse_occurrence",
    "parse_scenario",
    "scenario_document",
]

MAX_INSTANCES = 10_000
MAX_EVENTS = 1_000
MAX_MOCKS = 100
MAX_UNTIL = timedelta(days=3660)
START = datetime(2026, 1, 1, tzinfo=UTC)
"""Virtual time of every simulation's start (results repeat)."""


ScenarioError = InvalidInputError
"""A scenario that cannot run; the message names the field (``tasks.ship[1].error.code: …``)."""


@dataclass(frozen=True)
class Mock:
    kind: Literal["complete", "error", "fail"]
    variables: dict[str, Any] = field(default_factory=dict)
    code: str = ""
    message: str = ""
    weight: float = 1.0

    def document(self) -> dict[str, Any]:
        match self.kind:
            case "complete":
                return {"complete": self.variables}
            case "error":
                return {"error": {"code": self.code, "message": self.message, "variables": self.variables}}
            case _:
                return {"fail": self.message}


@dataclass(frozen=True)
class ScenarioEvent:
    """A message, a signal or only time passing (``time``), ``at`` a duration from the start."""

    at: timedelta
    kind: Literal["message", "signal", "time"]
    name: str = ""
    correlation_key: str = ""
    variables: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        """The event as a scenario file has it (:func:`parse_scenario` reads it back)."""
        entry: dict[str, Any] = {"at": isodate.duration_isoformat(self.at)}
        if self.kind == "message":
            entry["message"] = {"name": self.name, "correlationKey": self.correlation_key, "variables": self.variables}
        elif self.kind == "signal":
            entry["signal"] = {"name": self.name, "variables": self.variables}
        return entry


@dataclass
class Scenario:
    process: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    instances: int = 1
    seed: int = 1
    tasks: dict[str, list[Mock]] = field(default_factory=dict)
    user_tasks: dict[str, list[Mock]] = field(default_factory=dict)
    events: list[ScenarioEvent] = field(default_factory=list)
    until: timedelta = timedelta(days=30)


# --- parsing ----------------------------------------------------------------------------------

_KEYS = {"process", "variables", "instances", "seed", "tasks", "userTasks", "events", "until"}


def _fail(where: str, problem: str) -> ScenarioError:
    return ScenarioError(f"{where}: {problem}")


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _fail(where, "a mapping of names to values")
    return value


def _text(value: Any, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty) or len(value) > 256:
        raise _fail(where, "a string of 1 to 256 characters")
    return value


def parse_duration(value: Any, where: str) -> timedelta:
    """An ISO 8601 duration from 0 to 10 years (``PT1H``, ``P1D``); the error names ``where``."""
    try:
        parsed = isodate.parse_duration(str(value))
    except (isodate.ISO8601Error, ValueError):
        raise _fail(where, f"an ISO 8601 duration such as PT1H, not {value!r}") from None
    delta: timedelta = parsed.totimedelta(start=START) if isinstance(parsed, isodate.Duration) else parsed
    if not timedelta(0) <= delta <= MAX_UNTIL:
        raise _fail(where, "a duration from 0 to 10 years")
    return delta


def _mock(value: Any, where: str, *, user_task: bool = False) -> Mock:
    if not isinstance(value, dict):
        raise _fail(where, "a mapping with complete, error or fail")
    weight = value.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 1_000_000:
        raise _fail(f"{where}.weight", "a positive number")
    kinds = [k for k in ("complete", "error", "fail") if k in value]
    unknown = set(value) - {"complete", "error", "fail", "weight"}
    if unknown:
        raise _fail(f"{where}.{sorted(unknown)[0]}", "unknown field (complete, error, fail, weight)")
    if len(kinds) != 1 or (user_task and kinds != ["complete"]):
        raise _fail(where, "complete" if user_task else "exactly one of complete, error, fail")
    kind = kinds[0]
    if kind == "complete":
        return Mock("complete", _object(value["complete"], f"{where}.complete"), weight=float(weight))
    if kind == "fail":
        return Mock("fail", message=_text(value["fail"], f"{where}.fail"), weight=float(weight))
    error = value["error"]
    if not isinstance(error, dict):
        raise _fail(f"{where}.error", "a mapping with code, message and variables")
    return Mock(
        "error",
        _object(error.get("variables"), f"{where}.error.variables"),
        code=_text(error.get("code"), f"{where}.error.code"),
        message=_text(error.get("message", ""), f"{where}.error.message", empty=True),
        weight=float(weight),
    )


def _mocks(value: Any, where: str, *, user_task: bool = False) -> dict[str, list[Mock]]:
    found: dict[str, list[Mock]] = {}
    for name, spec in _object(value, where).items():
        _text(name, f"{where} key")
        options = spec if isinstance(spec, list) else [spec]
        if not 1 <= len(options) <= MAX_MOCKS:
            raise _fail(f"{where}.{name}", f"1 to {MAX_MOCKS} mocks")
        found[name] = [
            _mock(o, f"{where}.{name}" + (f"[{i}]" if isinstance(spec, list) else ""), user_task=user_task)
            for i, o in enumerate(options)
        ]
    return found


def _event(value: Any, where: str) -> ScenarioEvent:
    if not isinstance(value, dict):
        raise _fail(where, "a mapping with at and message, signal or nothing (time passes)")
    unknown = set(value) - {"at", "message", "signal"}
    if unknown:
        raise _fail(f"{where}.{sorted(unknown)[0]}", "unknown field (at, message, signal)")
    if "at" not in value:
        raise _fail(f"{where}.at", "required: when, as a duration from the start (PT1H)")
    at = parse_duration(value["at"], f"{where}.at")
    if "message" in value and "signal" in value:
        raise _fail(where, "a message or a signal, not both")
    for kind in ("message", "signal"):
        if kind in value:
            return parse_occurrence(at, "message" if kind == "message" else "signal", value[kind], f"{where}.{kind}")
    return ScenarioEvent(at, "time")


def parse_occurrence(at: timedelta, kind: Literal["message", "signal"], spec: Any, where: str) -> ScenarioEvent:
    """A message (``{name, correlationKey?, variables?}``) or a signal (``{name, variables?}``)
    at ``at``, bounded as in a scenario file."""
    if not isinstance(spec, dict):
        raise _fail(where, "a mapping with name")
    fields = {"name", "correlationKey", "variables"} if kind == "message" else {"name", "variables"}
    unknown = set(spec) - fields
    if unknown:
        raise _fail(f"{where}.{sorted(unknown)[0]}", f"unknown field ({', '.join(sorted(fields))})")
    key = spec.get("correlationKey", "")
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise _fail(f"{where}.correlationKey", "a string or a whole number")
    return ScenarioEvent(
        at,
        kind,
        name=_text(spec.get("name"), f"{where}.name"),
        correlation_key=_text(str(key), f"{where}.correlationKey", empty=True),
        variables=_object(spec.get("variables"), f"{where}.variables"),
    )


def _count(value: Any, where: str, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise _fail(where, f"a whole number from 1 to {top}")
    return value


def parse_scenario(document: Any) -> Scenario:
    """A scenario from a decoded JSON/YAML document; :class:`ScenarioError` names the bad field."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise _fail("scenario", "a mapping (JSON object or YAML mapping)")
    unknown = set(document) - _KEYS
    if unknown:
        raise _fail(sorted(unknown)[0], f"unknown field (one of {', '.join(sorted(_KEYS))})")
    events = document.get("events") or []
    if not isinstance(events, list) or len(events) > MAX_EVENTS:
        raise _fail("events", f"a list of at most {MAX_EVENTS} events")
    process = document.get("process")
    seed = document.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise _fail("seed", "a whole number")
    return Scenario(
        process=None if process is None else _text(process, "process"),
        variables=_object(document.get("variables"), "variables"),
        instances=_count(document.get("instances", 1), "instances", MAX_INSTANCES),
        seed=seed,
        tasks=_mocks(document.get("tasks"), "tasks"),
        user_tasks=_mocks(document.get("userTasks"), "userTasks", user_task=True),
        events=sorted((_event(e, f"events[{i}]") for i, e in enumerate(events)), key=lambda e: e.at),
        until=parse_duration(document.get("until", "P30D"), "until"),
    )


def scenario_document(scenario: Scenario) -> dict[str, Any]:
    """The scenario as a document :func:`parse_scenario` reads back (to save it as a file)."""

    def mocks(table: dict[str, list[Mock]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, options in table.items():
            docs = [dict(m.document(), **({"weight": m.weight} if m.weight != 1 else {})) for m in options]
            out[name] = docs[0] if len(docs) == 1 else docs
        return out

    document: dict[str, Any] = {
        "variables": scenario.variables,
        "instances": scenario.instances,
        "seed": scenario.seed,
        "tasks": mocks(scenario.tasks),
        "userTasks": mocks(scenario.user_tasks),
        "events": [e.document() for e in scenario.events],
        "until": isodate.duration_isoformat(scenario.until),
    }
    if scenario.process:
        document = {"process": scenario.process, **document}
    return document

