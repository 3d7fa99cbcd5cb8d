"""FEEL values in Python, and the operations every part of the compiler shares.

Representation (chosen so that JSON process variables need no conversion on the way in):

=====================  ===========================================================
FEEL type              Python
=====================  ===========================================================
null                   ``None``
boolean                ``bool``
number                 ``int`` when exact, else ``float`` (``Decimal`` accepted)
string                 ``str``
list                   ``list``
context                ``dict`` (any ``Mapping`` accepted as input)
date                   ``datetime.date``
time                   ``datetime.time`` (tz-aware when it carries an offset)
date and time          ``datetime.datetime`` (tz-aware when it carries a zone/offset)
days-time duration     ``datetime.timedelta``
years-months duration  ``isodate.Duration`` with only years and months
range                  :class:`FeelRange`
function               :class:`FeelFunction` (and built-ins, see ``functions``)
=====================  ===========================================================

``bool`` is a subclass of ``int`` in Python, so number tests always exclude it explicitly.
Comparisons follow FEEL: comparing with ``null`` or across types gives ``null`` (``None``), except
``=``/``!=`` against ``null``, which test for null.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from isodate import Duration

from .limits import spend

__all__ = [
    "Duration",
    "Env",
    "FeelFunction",
    "FeelRange",
    "ItemScope",
    "Scope",
    "feel_eq",
    "feel_le",
    "feel_lt",
    "format_duration",
    "format_temporal",
    "is_number",
    "is_ym_duration",
    "to_json_value",
    "ym_duration",
    "ym_months",
]

Env = Mapping[str, Any]
"""What compiled closures evaluate against: the caller's variables, or a nested :class:`Scope`."""

_MISSING: Any = object()


class Scope(Mapping[str, Any]):
    """A local frame (loop variable, context entries, function parameters) over a parent env."""

    __slots__ = ("local", "parent")

    def __init__(self, local: dict[str, Any], parent: Env) -> None:
        self.local = local
        self.parent = parent

    def get(self, key: str, default: Any = None) -> Any:
        value = self.local.get(key, _MISSING)
        if value is _MISSING:
            return self.parent.get(key, default)
        return value

    def __getitem__(self, key: str) -> Any:
        if key in self.local:
            return self.local[key]
        return self.parent[key]

    def __contains__(self, key: object) -> bool:
        return key in self.local or key in self.parent

    def __iter__(self) -> Iterator[str]:
        seen = set(self.local)
        yield from self.local
        yield from (k for k in self.parent if k not in seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class ItemScope(Mapping[str, Any]):
    """The scope of a filter condition: ``item`` plus, for context items, the item's entries."""

    __slots__ = ("item", "parent")

    def __init__(self, item: Any, parent: Env) -> None:
        self.item = item
        self.parent = parent

    def get(self, key: str, default: Any = None) -> Any:
        item = self.item
        if type(item) is dict or isinstance(item, Mapping):
            value = item.get(key, _MISSING)
            if value is not _MISSING:
                return value
        if key == "item":
            return item
        return self.parent.get(key, default)

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        if key == "item" or (isinstance(self.item, Mapping) and key in self.item):
            return True
        return key in self.parent

    def __iter__(self) -> Iterator[str]:
        own = ["item", *self.item] if isinstance(self.item, Mapping) else ["item"]
        yield from own
        yield from (k for k in self.parent if k not in own)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True, slots=True)
class FeelRange:
    """An interval such as ``[1..5]`` or ``(date("2024-01-01")..today())``."""

    start: Any
    end: Any
    start_included: bool
    end_included: bool

    def contains(self, value: Any) -> bool | None:
        low = feel_le(self.start, value) if self.start_included else feel_lt(self.start, value)
        if low is not True:
            return low
        return feel_le(value, self.end) if self.end_included else feel_lt(value, self.end)


@dataclass(frozen=True, slots=True, eq=False)
class FeelFunction:
    """A function value: a ``function(a, b) body`` literal closed over its defining scope."""

    params: tuple[str, ...]
    body: Callable[[Env], Any]
    env: Env
    cost: int = 1  # steps charged per call: the size of the body (see ``limits``)

    def __call__(self, *args: Any) -> Any:
        spend(self.cost)
        local = dict(zip(self.params, args, strict=False))
        for missing in self.params[len(args) :]:
            local[missing] = None
        return self.body(Scope(local, self.env))


_NUMBER_TYPES = (int, float, Decimal)


def is_number(value: Any) -> bool:
    """True for FEEL numbers: ``int``, ``float`` or ``Decimal``, never ``bool``."""
    return isinstance(value, _NUMBER_TYPES) and not isinstance(value, bool)


def ym_duration(months: int) -> Duration:
    """A years-months duration of ``months`` months, normalised to years + months (same sign)."""
    sign = -1 if months < 0 else 1
    years, rest = divmod(abs(months), 12)
    return Duration(years=sign * years, months=sign * rest)


def ym_months(value: Duration) -> int:
    """Total months of a years-months duration."""
    return int(value.years) * 12 + int(value.months)


def is_ym_duration(value: Any) -> bool:
    return isinstance(value, Duration) and not value.tdelta


def _kind(value: Any) -> type | None:
    """The comparison kind of a value, or None when FEEL does not order values of its type."""
    tp = type(value)
    if tp is int or tp is float or tp is Decimal:
        return float
    if tp in (str, date, timedelta):
        return tp
    if isinstance(value, datetime):
        return datetime
    if isinstance(value, time):
        return time
    if isinstance(value, Duration):
        return _DURATION
    return None


_DURATION: type = Duration


def _ordered_pair(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Both values in a form Python can order, or None when FEEL says they do not compare."""
    if a is None or b is None:
        return None
    kind = _kind(a)
    if kind is None or kind is not _kind(b):
        return None
    if kind is float:
        if type(a) is Decimal and type(b) is float:
            return float(a), b
        if type(b) is Decimal and type(a) is float:
            return a, float(b)
        return a, b
    if kind is datetime or kind is time:
        if (a.tzinfo is None) != (b.tzinfo is None):
            return None
        if kind is time and a.tzinfo is not None:
            return _time_seconds(a), _time_seconds(b)
        return a, b
    if kind is _DURATION:
        if not is_ym_duration(a) or not is_ym_duration(b):
            return None
        return ym_months(a), ym_months(b)
    return a, b


def _time_seconds(value: time) -> float:
    offset = value.utcoffset() or timedelta()
    secs = value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6
    return secs - offset.total_seconds()


def feel_lt(a: Any, b: Any) -> bool | None:
    pair = _ordered_pair(a, b)
    return None if pair is None else bool(pair[0] < pair[1])


def feel_le(a: Any, b: Any) -> bool | None:
    pair = _ordered_pair(a, b)
    return None if pair is None else bool(pair[0] <= pair[1])


def feel_eq(a: Any, b: Any) -> bool | None:
    """FEEL ``=``: null-safe, deep for lists and contexts, ``None`` across types."""
    if a is None or b is None:
        return a is None and b is None
    ta = type(a)
    if ta is type(b):
        if ta is list:
            if len(a) != len(b):
                return False
            spend(len(a))
            return all(feel_eq(x, y) is True for x, y in zip(a, b, strict=True))
        if ta is dict:
            if a.keys() != b.keys():
                return False
            spend(len(a))
            return all(feel_eq(v, b[k]) is True for k, v in a.items())
        if (ta is datetime or ta is time) and (a.tzinfo is None) != (b.tzinfo is None):
            return None
        return bool(a == b)
    if is_number(a) and is_number(b):
        pair = _ordered_pair(a, b)
        return pair is not None and bool(pair[0] == pair[1])
    if isinstance(a, bool) or isinstance(b, bool):
        return None
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return feel_eq(dict(a), dict(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return feel_eq(list(a), list(b))
    pair = _ordered_pair(a, b)
    return None if pair is None else bool(pair[0] == pair[1])


# --------------------------------------------------------------------------------------------- text


def format_duration(value: timedelta | Duration) -> str:
    """ISO 8601 text of a duration, as FEEL prints it (``P1DT2H``, ``-PT5M``, ``P1Y2M``)."""
    if isinstance(value, Duration):
        months = ym_months(value)
        sign = "-" if months < 0 else ""
        years, rest = divmod(abs(months), 12)
        body = (f"{years}Y" if years else "") + (f"{rest}M" if rest or not years else "")
        return f"{sign}P{body}"
    total_us = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if total_us < 0 else ""
    total_us = abs(total_us)
    days, rest = divmod(total_us, 86400 * 1_000_000)
    hours, rest = divmod(rest, 3600 * 1_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    out = f"{sign}P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if seconds or micros:
        clock += f"{seconds}.{micros:06d}".rstrip("0") + "S" if micros else f"{seconds}S"
    if clock:
        out += "T" + clock
    elif not days:
        out += "T0S"
    return out


def format_temporal(value: date | time) -> str:
    """ISO 8601 text of a date, time or date-and-time; a zero UTC offset prints as ``Z``."""
    text = value.isoformat()
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text


def _json_number(value: float | Decimal) -> int | float | None:
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value.bit_length() > 1000:  # json.dumps cannot print ints past 4300 digits; FEEL has 34
        try:
            return float(value)
        except OverflowError:
            return None
    return value


def to_json_value(value: Any) -> Any:
    """Convert a FEEL result into plain JSON data (``json.dumps`` always accepts the result).

    Dates, times and durations become ISO 8601 strings, ``Decimal`` becomes ``int``/``float``,
    non-finite floats and function values become ``None``, ranges become
    ``{"start", "end", "startIncluded", "endIncluded"}`` objects.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if is_number(value):
        return _json_number(value)
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, (date, time)):
        return format_temporal(value)
    if isinstance(value, (timedelta, Duration)):
        return format_duration(value)
    if isinstance(value, FeelRange):
        return {
            "start": to_json_value(value.start),
            "end": to_json_value(value.end),
            "startIncluded": value.start_included,
            "endIncluded": value.end_included,
        }
    return None
