"""Static checks of timer values: ISO 8601 durations, date-times, repeating intervals, cron."""

from __future__ import annotations

import re

import isodate
from croniter import croniter

__all__ = ["check_cycle", "check_date", "check_duration", "check_timer"]

_ZONE_SUFFIX = re.compile(r"\[[A-Za-z0-9_+\-/]+\]\Z")
_REPEAT = re.compile(r"R(\d*)\Z")
_CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})


def check_duration(value: str) -> str | None:
    """None when ``value`` is an ISO 8601 duration (``PT15M``), else what is wrong."""
    try:
        isodate.parse_duration(value)
    except (ValueError, TypeError, OverflowError):
        return "is not an ISO 8601 duration (like PT15M or P1DT2H)"
    if not any(ch.isdigit() for ch in value):
        return "is not an ISO 8601 duration (like PT15M or P1DT2H)"
    return None


def check_date(value: str) -> str | None:
    """None when ``value`` is an ISO 8601 date-time (optionally with a ``[Zone/Id]`` suffix)."""
    try:
        isodate.parse_datetime(_ZONE_SUFFIX.sub("", value))
    except (ValueError, TypeError, OverflowError, AttributeError):
        return "is not an ISO 8601 date-time (like 2025-01-31T09:00:00Z)"
    return None


def _check_cron(value: str) -> str | None:
    if value.lower() in _CRON_MACROS:
        return None
    if len(value.split()) != 6:
        return (
            "is neither an ISO 8601 repeating interval (like R5/PT10M) nor a cron expression "
            "with 6 fields (seconds minutes hours day-of-month month day-of-week)"
        )
    try:
        valid = croniter.is_valid(value, second_at_beginning=True)
    except (ValueError, KeyError, TypeError, IndexError, OverflowError):
        valid = False
    return None if valid else "is not a valid cron expression"


def check_cycle(value: str) -> str | None:
    """None for ``R[n]/duration``, ``R[n]/start/duration``, ``R[n]/duration/end`` or 6-field cron."""
    if not value.startswith("R"):
        return _check_cron(value)
    parts = value.split("/")
    if not _REPEAT.match(parts[0]) or len(parts) not in (2, 3):
        return "is not an ISO 8601 repeating interval (like R5/PT10M or R/2025-01-01T09:00:00Z/P1D)"
    rest = parts[1:]
    durations = [p for p in rest if p.startswith("P")]
    if len(durations) != 1:
        return "is not an ISO 8601 repeating interval: it needs exactly one duration (like R5/PT10M)"
    for part in rest:
        problem = check_duration(part) if part.startswith("P") else check_date(part)
        if problem:
            return f"is not an ISO 8601 repeating interval: '{part}' {problem}"
    return None


def check_timer(kind: str, value: str) -> str | None:
    if kind == "duration":
        return check_duration(value)
    if kind == "date":
        return check_date(value)
    return check_cycle(value)
