"""Timer arithmetic: when a timer event is due, and when a cycle fires next.

Values follow Zeebe: ``timeDuration`` an ISO 8601 duration (``PT10S``, ``P1D``), ``timeDate``
an ISO 8601 date-time (a zone in brackets is accepted), ``timeCycle`` a repeating interval
(``R3/PT10S``, ``R/PT1H``, ``R5/2026-01-01T00:00:00Z/PT1H``) or a 6-field cron expression
(seconds first, Spring style). FEEL expressions may produce any of these as strings, or
durations and date-times as values. Pure functions; time always comes from the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import isodate
from croniter import croniter

from natsflow_engine.errors import NatsflowError

__all__ = ["Cycle", "due_at", "next_in_cycle", "parse_cycle", "to_rfc3339"]

_ZONE = re.compile(r"\[[^\]]+\]$")


@dataclass(frozen=True)
class Cycle:
    """A parsed ``timeCycle``: ``repetitions`` None means forever; either ``interval`` or ``cron``."""

    repetitions: int | None
    interval: timedelta | None = None
    start: datetime | None = None
    cron: str | None = None

    def first(self, now: datetime) -> datetime:
        if self.cron is not None:
            return _cron_next(self.cron, now)
        assert self.interval is not None
        if self.start is not None and self.start > now:
            return self.start
        return now + self.interval

    def after(self, fired: datetime) -> datetime:
        if self.cron is not None:
            return _cron_next(self.cron, fired)
        assert self.interval is not None
        return fired + self.interval

    def encode(self) -> dict[str, Any]:
        return {
            "r": self.repetitions,
            "i": self.interval.total_seconds() if self.interval is not None else None,
            "c": self.cron,
        }

    @classmethod
    def decode(cls, data: dict[str, Any]) -> Cycle:
        interval = timedelta(seconds=data["i"]) if data.get("i") is not None else None
        return cls(repetitions=data.get("r"), interval=interval, cron=data.get("c"))


def _cron_next(expr: str, after: datetime) -> datetime:
    fields = expr.split()
    if len(fields) == 6:  # Zeebe/Spring: seconds first
        nxt = croniter(expr, after, second_at_beginning=True).get_next(datetime)
    else:
        nxt = croniter(expr, after).get_next(datetime)
    assert isinstance(nxt, datetime)
    return nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, isodate.Duration):
        delta: timedelta = value.totimedelta(start=datetime(2000, 1, 1))
        return delta
    if isinstance(value, str):
        try:
            parsed = isodate.parse_duration(value.strip())
        except (isodate.ISO8601Error, ValueError) as exc:
            raise NatsflowError(f"'{value}' is not an ISO 8601 duration") from exc
        return _duration(parsed)
    raise NatsflowError(f"{value!r} is not a duration")


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        zone = _ZONE.search(value.strip())
        text = _ZONE.sub("", value.strip())
        try:
            parsed = isodate.parse_datetime(text)
        except (isodate.ISO8601Error, ValueError) as exc:
            raise NatsflowError(f"'{value}' is not an ISO 8601 date-time") from exc
        if zone and parsed.tzinfo is None:
            try:
                parsed = parsed.replace(tzinfo=ZoneInfo(zone.group(0)[1:-1]))
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise NatsflowError(f"unknown time zone in '{value}'") from exc
        return _datetime(parsed)
    raise NatsflowError(f"{value!r} is not a date-time")


def parse_cycle(value: Any) -> Cycle:
    if isinstance(value, timedelta | isodate.Duration):
        return Cycle(repetitions=None, interval=_duration(value))
    if not isinstance(value, str):
        raise NatsflowError(f"{value!r} is not a timer cycle")
    text = value.strip()
    if not text.startswith("R"):
        if len(text.split()) in (5, 6) and croniter.is_valid(text, second_at_beginning=len(text.split()) == 6):
            return Cycle(repetitions=None, cron=text)
        raise NatsflowError(f"'{value}' is neither a repeating interval (R3/PT10S) nor a cron expression")
    parts = text.split("/")
    count = parts[0][1:]
    repetitions = int(count) if count else None
    if len(parts) == 2:
        return Cycle(repetitions, interval=_duration(parts[1]))
    if len(parts) == 3:
        return Cycle(repetitions, interval=_duration(parts[2]), start=_datetime(parts[1]))
    raise NatsflowError(f"'{value}' is not a repeating interval")


def due_at(kind: str, value: Any, now: datetime) -> tuple[datetime, Cycle | None]:
    """When a timer of ``kind`` (duration, date, cycle) with ``value`` first fires."""
    if kind == "duration":
        return now + _duration(value), None
    if kind == "date":
        return _datetime(value), None
    cycle = parse_cycle(value)
    return cycle.first(now), cycle


def next_in_cycle(cycle: Cycle, fired: datetime) -> tuple[datetime, Cycle] | None:
    """The next firing after one at ``fired``, or None when the repetitions are used up."""
    if cycle.repetitions is not None:
        if cycle.repetitions <= 1:
            return None
        cycle = Cycle(cycle.repetitions - 1, cycle.interval, None, cycle.cron)
    return cycle.after(fired), cycle


def to_rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
