"""FEEL arithmetic, including temporal arithmetic, with null for anything FEEL leaves undefined.

Numbers stay ``int`` while the result is exact (``6 / 3`` is ``2``) and become ``float``
otherwise (``7 / 2`` is ``3.5``); division by zero is null. Strings concatenate with ``+``.
Temporal rules: date/date-and-time/time +/- duration, date - date = days-time duration, duration
+/- duration of the same kind, duration * number, duration / number, duration / duration = number.
A date plus a days-time duration stays a date (the time of day is dropped, as in feel-scala).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from .limits import CHARS_PER_STEP, check_string, spend
from .values import Duration, is_number, is_ym_duration, ym_duration, ym_months

__all__ = ["add", "div", "mul", "neg", "power", "sub"]

_MAX_POW_BITS = 4096


def _nums(a: Any, b: Any) -> tuple[Any, Any] | None:
    if not (is_number(a) and is_number(b)):
        return None
    if type(a) is Decimal and type(b) is float:
        return float(a), b
    if type(b) is Decimal and type(a) is float:
        return a, float(b)
    return a, b


def _finite(value: Any) -> Any:
    if type(value) is float and not math.isfinite(value):
        return None
    return value


def _joined(text: str) -> str:
    """A concatenated string: charged by its length when long, refused past the cap."""
    if len(text) > CHARS_PER_STEP:
        spend(len(text) // CHARS_PER_STEP)
        check_string(len(text))
    return text


def _datetime_of(value: date) -> datetime:
    return value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)


def _add_time(value: time, delta: timedelta) -> time:
    base = datetime(2000, 1, 1, value.hour, value.minute, value.second, value.microsecond)
    moved = base + delta
    return moved.time().replace(tzinfo=value.tzinfo, fold=value.fold)


def _temporal_add(a: Any, b: Any) -> Any:
    """``a + b`` where at least one side is temporal; None when the combination is undefined."""
    if isinstance(a, (timedelta, Duration)) and not isinstance(b, (timedelta, Duration)):
        a, b = b, a
    if isinstance(b, timedelta):
        if isinstance(a, timedelta):
            return a + b
        if isinstance(a, datetime):
            return a + b
        if isinstance(a, date):
            return (_datetime_of(a) + b).date()
        if isinstance(a, time):
            return _add_time(a, b)
        return None
    if is_ym_duration(b):
        if is_ym_duration(a):
            return ym_duration(ym_months(a) + ym_months(b))
        if isinstance(a, date):  # date or datetime; isodate clamps the day to the month's end
            return a + b
    return None


def add(a: Any, b: Any) -> Any:
    tp = type(a)
    if tp is type(b):
        if tp is int or tp is float:
            return _finite(a + b)
        if tp is str:
            return _joined(a + b)
    pair = _nums(a, b)
    if pair is not None:
        return _finite(pair[0] + pair[1])
    if a is None or b is None or isinstance(a, (str, bool)) or isinstance(b, (str, bool)):
        return None
    return _temporal_add(a, b)


def neg(a: Any) -> Any:
    if is_number(a):
        return -a
    if isinstance(a, timedelta):
        return -a
    if is_ym_duration(a):
        return ym_duration(-ym_months(a))
    return None


def sub(a: Any, b: Any) -> Any:
    tp = type(a)
    if tp is type(b) and (tp is int or tp is float):
        return _finite(a - b)
    pair = _nums(a, b)
    if pair is not None:
        return _finite(pair[0] - pair[1])
    if a is None or b is None:
        return None
    if isinstance(a, date) and isinstance(b, date):
        if isinstance(a, datetime) or isinstance(b, datetime):
            x, y = _datetime_of(a), _datetime_of(b)
            if (x.tzinfo is None) != (y.tzinfo is None):
                return None
            return x - y
        return a - b
    if isinstance(a, time) and isinstance(b, time):
        if (a.tzinfo is None) != (b.tzinfo is None):
            return None
        day = date(2000, 1, 1)
        return datetime.combine(day, a) - datetime.combine(day, b)
    if isinstance(b, (timedelta, Duration)) and not isinstance(a, (int, float, str, bool)):
        negated = neg(b)
        return None if negated is None else _temporal_add(a, negated)
    return None


def mul(a: Any, b: Any) -> Any:
    tp = type(a)
    if tp is type(b):
        if tp is float:
            return _finite(a * b)
        if tp is int:
            if a.bit_length() + b.bit_length() > _MAX_POW_BITS:  # far past FEEL's 34 digits
                return _finite(float(a) * float(b))
            return a * b
    pair = _nums(a, b)
    if pair is not None:
        return _finite(pair[0] * pair[1])
    if is_number(a) and not is_number(b):
        a, b = b, a
    if not is_number(b):
        return None
    if isinstance(a, timedelta):
        return a * float(b) if not isinstance(b, int) else a * b
    if is_ym_duration(a):
        return ym_duration(int(ym_months(a) * b))
    return None


def div(a: Any, b: Any) -> Any:
    pair = _nums(a, b)
    if pair is not None:
        x, y = pair
        if not y:
            return None
        if type(x) is int and type(y) is int:
            q, r = divmod(x, y)
            return q if r == 0 else x / y
        if type(x) is Decimal or type(y) is Decimal:
            return Decimal(x) / Decimal(y)
        return _finite(x / y)
    if isinstance(a, timedelta):
        if isinstance(b, timedelta):
            return None if not b else _integral(a / b)
        if is_number(b) and b:
            return a / float(b)
        return None
    if is_ym_duration(a):
        if is_ym_duration(b):
            months = ym_months(b)
            return None if not months else _integral(ym_months(a) / months)
        if is_number(b) and b:
            return ym_duration(int(ym_months(a) / b))
    return None


def _integral(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def power(a: Any, b: Any) -> Any:
    pair = _nums(a, b)
    if pair is None:
        return None
    x, y = pair
    if type(x) is int and type(y) is int:
        if y < 0:
            return None if x == 0 else _finite(float(x) ** y)
        if abs(x) > 1 and y * x.bit_length() > _MAX_POW_BITS:
            try:
                return _finite(float(x) ** y)
            except OverflowError:
                return None
        return x**y
    try:
        result = float(x) ** float(y)
    except (OverflowError, ZeroDivisionError):
        return None
    if isinstance(result, complex):
        return None
    return _finite(result)
