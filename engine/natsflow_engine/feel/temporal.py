"""FEEL temporal values: parsing ISO 8601 text, properties (``d.year``), and the temporal built-ins.

Parsing is strict (FEEL's formats, not everything ``fromisoformat`` tolerates):

* date ``2024-01-31``; time ``10:15:00`` with optional fraction and ``Z``/``+01:00``/``@Zone/Id``;
* date and time ``2024-01-31T10:15:00`` with the same optional zone, ``@Europe/Berlin`` or
  ``[Europe/Berlin]`` (zone ids resolve through :mod:`zoneinfo`; unknown ids give null);
* durations ``P1DT2H30M`` (days-time, a ``timedelta``) or ``P1Y2M`` (years-months, an
  ``isodate.Duration``); FEEL has no mixed durations, so ``P1Y2D`` is null.

``now()`` and ``today()`` read the clock set by ``CompiledExpression.evaluate(now=...)``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from .functions import CLOCK, builtin
from .limits import EvaluationAborted
from .values import Duration, is_ym_duration, ym_duration, ym_months

__all__ = [
    "parse_date",
    "parse_date_and_time",
    "parse_duration",
    "parse_temporal",
    "parse_time",
    "temporal_property",
]

_DATE = r"(\d{4})-(\d{2})-(\d{2})"
_TIME = r"(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
_ZONE = r"(Z|[+-]\d{2}:\d{2}(?::\d{2})?)?(?:@([A-Za-z][A-Za-z0-9_+\-/]*)|\[([A-Za-z][A-Za-z0-9_+\-/]*)\])?"
_DATE_RE = re.compile(f"^{_DATE}$")
_TIME_RE = re.compile(f"^{_TIME}{_ZONE}$")
_DATETIME_RE = re.compile(f"^{_DATE}T{_TIME}{_ZONE}$")
_DURATION_RE = re.compile(
    r"^(-)?P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _zone(offset: str | None, zone_id: str | None) -> tzinfo | None:
    """The tzinfo for an offset or zone id; None for a local value. ValueError when invalid."""
    if zone_id:
        try:
            return ZoneInfo(zone_id)
        except (ValueError, KeyError, OSError) as error:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {zone_id!r}") from error
    if offset is None:
        return None
    if offset == "Z":
        return UTC
    sign = -1 if offset[0] == "-" else 1
    parts = [int(p) for p in offset[1:].split(":")]
    delta = timedelta(hours=parts[0], minutes=parts[1], seconds=parts[2] if len(parts) > 2 else 0)
    return timezone(sign * delta)  # ValueError past 24 hours


def _micros(fraction: str | None) -> int:
    return int((fraction or "0")[:6].ljust(6, "0"))


def parse_date(text: str) -> date | None:
    match = _DATE_RE.match(text)
    if not match:
        return None
    year, month, day = (int(g) for g in match.groups())
    try:
        return date(year, month, day)
    except ValueError:
        return None


def parse_time(text: str) -> time | None:
    match = _TIME_RE.match(text)
    if not match:
        return None
    hh, mm, ss, frac, offset, zone_id, bracket_zone = match.groups()
    if zone_id or bracket_zone:
        return None  # a time alone cannot resolve a zone id's offset
    try:
        return time(int(hh), int(mm), int(ss or 0), _micros(frac), tzinfo=_zone(offset, None))
    except ValueError:
        return None


def parse_date_and_time(text: str) -> datetime | None:
    match = _DATETIME_RE.match(text)
    if not match:
        return None
    y, mo, d, hh, mm, ss, frac, offset, zone_id, bracket_zone = match.groups()
    try:
        tz = _zone(offset if not (zone_id or bracket_zone) else None, zone_id or bracket_zone)
        return datetime(int(y), int(mo), int(d), int(hh), int(mm), int(ss or 0), _micros(frac), tzinfo=tz)
    except ValueError:
        return None


def parse_duration(text: str) -> timedelta | Duration | None:
    match = _DURATION_RE.match(text)
    if not match:
        return None
    sign, years, months, weeks, days, hours, minutes, seconds = match.groups()
    factor = -1 if sign else 1
    if years or months:
        if weeks or days or hours or minutes or seconds:
            return None
        return ym_duration(factor * (int(years or 0) * 12 + int(months or 0)))
    try:
        delta = timedelta(
            weeks=int(weeks or 0),
            days=int(days or 0),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=float(seconds or 0),
        )
    except OverflowError:
        return None
    return delta if factor == 1 else -delta


def parse_temporal(text: str) -> Any:
    """The value of an ``@"..."`` literal: date and time, date, time or duration; else None."""
    for parse in (parse_date_and_time, parse_date, parse_time, parse_duration):
        value = parse(text)
        if value is not None:
            return value
    return None


def _duration_parts(value: timedelta) -> dict[str, int | float]:
    total = value.total_seconds()
    sign = -1 if total < 0 else 1
    rest = abs(value)
    return {
        "days": sign * rest.days,
        "hours": sign * (rest.seconds // 3600),
        "minutes": sign * (rest.seconds // 60 % 60),
        "seconds": sign * (rest.seconds % 60),
    }


def temporal_property(value: Any, key: str) -> Any:
    """``value.key`` for temporal values (``year``, ``hour``, ``days`` ...); None otherwise."""
    if isinstance(value, (date, time)):
        if key in ("year", "month", "day") and isinstance(value, date):
            return getattr(value, key)
        if key == "weekday" and isinstance(value, date):
            return value.isoweekday()
        if key in ("hour", "minute", "second") and isinstance(value, (datetime, time)):
            return getattr(value, key)
        if key == "timezone" and isinstance(value, (datetime, time)):
            tz = value.tzinfo
            return tz.key if isinstance(tz, ZoneInfo) else None
        return None
    if isinstance(value, timedelta):
        return _duration_parts(value).get(key)
    if is_ym_duration(value):
        months = ym_months(value)
        sign = -1 if months < 0 else 1
        if key == "years":
            return sign * (abs(months) // 12)
        if key == "months":
            return sign * (abs(months) % 12)
    return None


# ------------------------------------------------------------------------------------ built-ins


def clock_now() -> datetime:
    """The evaluation clock; FEEL never reads the machine's clock (see ``functions.CLOCK``)."""
    now = CLOCK.get()
    if now is None:
        raise EvaluationAborted("now() and today() need the evaluation clock, and none was given")
    return now


@builtin("now", "", clock=True)
def _now() -> datetime:
    return clock_now()


@builtin("today", "", clock=True)
def _today() -> date:
    return clock_now().date()


@builtin("date", "from", "year, month, day")
def _date(*args: Any) -> date | None:
    if len(args) == 3:
        if all(type(a) is int for a in args):
            return date(*args)
        return None
    (value,) = args
    if isinstance(value, str):
        return parse_date(value) or _date_of_datetime(parse_date_and_time(value))
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return None


def _date_of_datetime(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


@builtin("time", "from", "hour, minute, second, offset?")
def _time(*args: Any) -> time | None:
    if len(args) >= 3:
        hour, minute, second = args[:3]
        if not all(type(a) is int for a in (hour, minute)) or not isinstance(second, (int, float)):
            return None
        micros = round((second - int(second)) * 1_000_000)
        tz = None
        if len(args) == 4 and args[3] is not None:
            if not isinstance(args[3], timedelta):
                return None
            tz = timezone(args[3])
        return time(hour, minute, int(second), micros, tzinfo=tz)
    if len(args) != 1:
        return None
    value = args[0]
    if isinstance(value, str):
        return parse_time(value)
    if isinstance(value, datetime):
        return value.timetz()
    if isinstance(value, time):
        return value
    if isinstance(value, date):
        return time(0, 0)
    return None


@builtin("date and time", "from", "date, time")
def _date_and_time(*args: Any) -> datetime | None:
    if len(args) == 1:
        value = args[0]
        if isinstance(value, str):
            return parse_date_and_time(value)
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        return None
    day, clock = args
    if not isinstance(day, date):
        return None
    if isinstance(clock, str) and isinstance(day, datetime):  # date and time(dt, "Europe/Berlin")
        tz = _zone(None, clock)
        if tz is None:
            return None
        return day.astimezone(tz) if day.tzinfo is not None else day.replace(tzinfo=tz)
    if not isinstance(clock, time):
        return None
    return datetime.combine(day if not isinstance(day, datetime) else day.date(), clock)


@builtin("duration", "from")
def _duration(value: Any) -> timedelta | Duration | None:
    if isinstance(value, str):
        return parse_duration(value)
    return None


@builtin("years and months duration", "from, to")
def _years_and_months(start: Any, end: Any) -> Duration | None:
    if not isinstance(start, date) or not isinstance(end, date):
        return None
    if isinstance(start, datetime) != isinstance(end, datetime):
        start = start if isinstance(start, datetime) else datetime(start.year, start.month, start.day)
        end = end if isinstance(end, datetime) else datetime(end.year, end.month, end.day)
        if start.tzinfo is not None or end.tzinfo is not None:
            start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    months = (end.year - start.year) * 12 + (end.month - start.month)
    rest_start = _rest_of_month(start)
    rest_end = _rest_of_month(end)
    if months > 0 and rest_end < rest_start:
        months -= 1
    elif months < 0 and rest_end > rest_start:
        months += 1
    return ym_duration(months)


def _rest_of_month(value: date) -> tuple[int, ...]:
    if isinstance(value, datetime):
        return (value.day, value.hour, value.minute, value.second, value.microsecond)
    return (value.day,)


@builtin("day of week", "date")
def _day_of_week(value: Any) -> str | None:
    return _DAYS[value.weekday()] if isinstance(value, date) else None


@builtin("day of year", "date")
def _day_of_year(value: Any) -> int | None:
    return value.timetuple().tm_yday if isinstance(value, date) else None


@builtin("week of year", "date")
def _week_of_year(value: Any) -> int | None:
    return value.isocalendar()[1] if isinstance(value, date) else None


@builtin("month of year", "date")
def _month_of_year(value: Any) -> str | None:
    return _MONTHS[value.month - 1] if isinstance(value, date) else None


@builtin("last day of month", "date")
def _last_day_of_month(value: Any) -> int | None:
    if not isinstance(value, date):
        return None
    first_next = date(value.year + value.month // 12, value.month % 12 + 1, 1)
    return (first_next - timedelta(days=1)).day
