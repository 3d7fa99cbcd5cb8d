"""Built-in functions: boolean, conversion, string, numeric and context functions.

List functions live in ``builtins_lists`` and temporal ones in ``temporal``; importing this module
registers all of them. Every function returns null (``None``) for arguments of the wrong type, as
FEEL requires. Regular expressions (``matches``, ``replace``, ``split``, ``extract``) run in
linear time on RE2 (see ``regex``); ``replace`` accepts ``$1`` group references. Rounding
functions work in ``Decimal`` so ``round half up(2.5, 0)`` is exact.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, time, timedelta
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    InvalidOperation,
)
from typing import Any

from . import builtins_lists, temporal  # noqa: F401  (registration side effect)
from .functions import builtin
from .limits import check_string
from .regex import expand_template, found, regex_of, substitute
from .values import Duration, FeelFunction, FeelRange, format_duration, format_temporal, is_number

__all__ = ["feel_string"]

# ------------------------------------------------------------------------------------ boolean


@builtin("not", "negand")
def _not(value: Any) -> Any:
    return (not value) if isinstance(value, bool) else None


@builtin("is defined", "value")
def _is_defined(value: Any) -> bool:  # compiled specially (needs the variable, not its value)
    return True


@builtin("get or else", "value, default")
def _get_or_else(value: Any, default: Any) -> Any:
    return default if value is None else value


# ------------------------------------------------------------------------------------ conversion


def _number_text(value: float | Decimal) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return repr(value)
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text else text
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def feel_string(value: Any, nested: bool = False) -> str | None:
    """FEEL's ``string()`` of a value; nested strings are quoted inside lists and contexts."""
    if value is None:
        return "null" if nested else None
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' if nested else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return _number_text(value)
    if isinstance(value, (date, time)):
        return format_temporal(value)
    if isinstance(value, (timedelta, Duration)):
        return format_duration(value)
    if isinstance(value, list):
        return "[" + ", ".join(str(feel_string(v, True)) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}:{feel_string(v, True)}" for k, v in value.items()) + "}"
    if isinstance(value, FeelRange):
        open_ = "[" if value.start_included else "("
        close = "]" if value.end_included else ")"
        return f"{open_}{feel_string(value.start, True)}..{feel_string(value.end, True)}{close}"
    if isinstance(value, FeelFunction):
        return "function(" + ", ".join(value.params) + ")"
    return None


@builtin("string", "from")
def _string(value: Any) -> str | None:
    return feel_string(value)


_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_number(text: str) -> int | float | None:
    text = text.strip()
    if not _NUMBER_RE.match(text):
        return None
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    result = float(text)
    return result if math.isfinite(result) else None


@builtin("number", "from", "from, grouping separator, decimal separator")
def _number(value: Any, grouping: Any = None, decimal_sep: Any = None) -> int | float | None:
    if is_number(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str):
        return None
    if grouping is not None:
        if grouping not in (" ", ",", ".") or grouping == decimal_sep:
            return None
        value = value.replace(grouping, "")
    if decimal_sep is not None:
        if decimal_sep not in (",", "."):
            return None
        value = value.replace(decimal_sep, ".")
    return parse_number(value)


# ------------------------------------------------------------------------------------ strings


def _strs(*values: Any) -> bool:
    return all(isinstance(v, str) for v in values)


@builtin("string length", "string")
def _string_length(s: Any) -> int | None:
    return len(s) if isinstance(s, str) else None


@builtin("upper case", "string")
def _upper_case(s: Any) -> str | None:
    return s.upper() if isinstance(s, str) else None


@builtin("lower case", "string")
def _lower_case(s: Any) -> str | None:
    return s.lower() if isinstance(s, str) else None


@builtin("substring", "string, start position, length?")
def _substring(s: Any, start: Any, length: Any = None) -> str | None:
    if not isinstance(s, str) or not is_number(start) or (length is not None and not is_number(length)):
        return None
    begin = int(start)
    index = begin - 1 if begin > 0 else max(len(s) + begin, 0)
    if length is None:
        return s[index:]
    if length < 0:
        return None
    return s[index : index + int(length)]


@builtin("substring before", "string, match")
def _substring_before(s: Any, match: Any) -> str | None:
    if not _strs(s, match):
        return None
    index = s.find(match)
    return "" if index < 0 else s[:index]


@builtin("substring after", "string, match")
def _substring_after(s: Any, match: Any) -> str | None:
    if not _strs(s, match):
        return None
    index = s.find(match)
    return "" if index < 0 else s[index + len(match) :]


@builtin("contains", "string, match")
def _contains(s: Any, match: Any) -> bool | None:
    return match in s if _strs(s, match) else None


@builtin("starts with", "string, match")
def _starts_with(s: Any, match: Any) -> bool | None:
    return s.startswith(match) if _strs(s, match) else None


@builtin("ends with", "string, match")
def _ends_with(s: Any, match: Any) -> bool | None:
    return s.endswith(match) if _strs(s, match) else None


@builtin("trim", "string")
def _trim(s: Any) -> str | None:
    return s.strip() if isinstance(s, str) else None


@builtin("is blank", "string")
def _is_blank(s: Any) -> bool | None:
    return not s.strip() if isinstance(s, str) else None


@builtin("matches", "input, pattern, flags?")
def _matches(s: Any, pattern: Any, flags: Any = None) -> bool | None:
    regex = regex_of(pattern, flags)
    return None if regex is None or not isinstance(s, str) else found(regex, s)


@builtin("replace", "input, pattern, replacement, flags?")
def _replace(s: Any, pattern: Any, replacement: Any, flags: Any = None) -> str | None:
    regex = regex_of(pattern, flags)
    if regex is None or not _strs(s, replacement):
        return None
    template = expand_template(replacement, regex.groups)
    return None if template is None else substitute(regex, template, s)


@builtin("split", "string, delimiter")
def _split(s: Any, delimiter: Any) -> list[str] | None:
    regex = regex_of(delimiter)
    if regex is None or not isinstance(s, str) or not delimiter:
        return None
    parts: list[str] = regex.split(s)
    return parts


@builtin("extract", "string, pattern")
def _extract(s: Any, pattern: Any) -> list[str] | None:
    regex = regex_of(pattern)
    if regex is None or not isinstance(s, str):
        return None
    return [m.group(0) for m in regex.finditer(s)]


@builtin("string join", "list, delimiter?, prefix?, suffix?")
def _string_join(items: Any, delimiter: Any = None, prefix: Any = None, suffix: Any = None) -> str | None:
    if not isinstance(items, list) or not all(v is None or isinstance(v, str) for v in items):
        return None
    if not all(v is None or isinstance(v, str) for v in (delimiter, prefix, suffix)):
        return None
    parts = [v for v in items if v is not None]
    check_string(sum(map(len, parts)) + len(delimiter or "") * max(len(parts) - 1, 0))
    joined = (delimiter or "").join(parts)
    return (prefix or "") + joined + (suffix or "")


# ------------------------------------------------------------------------------------ numbers


def _from_decimal(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _rounded(n: Any, scale: Any, mode: str) -> int | float | None:
    if not is_number(n) or (scale is not None and type(scale) is not int) or not math.isfinite(n):
        return None
    places = scale or 0
    if not -1000 <= places <= 1000:
        return None
    try:
        value = Decimal(repr(n)) if isinstance(n, float) else Decimal(n)
        rounded = value.quantize(Decimal(1).scaleb(-places), rounding=mode)
    except InvalidOperation:
        return None
    return _from_decimal(rounded)


def _rounding(name: str, mode: str, scale_optional: bool) -> None:
    signature = "n, scale?" if scale_optional else "n, scale"

    def rounder(n: Any, scale: Any = None) -> int | float | None:
        return _rounded(n, scale, mode)

    builtin(name, signature)(rounder)


_rounding("floor", ROUND_FLOOR, True)
_rounding("ceiling", ROUND_CEILING, True)
_rounding("decimal", ROUND_HALF_EVEN, False)
_rounding("round up", ROUND_UP, False)
_rounding("round down", ROUND_DOWN, False)
_rounding("round half up", ROUND_HALF_UP, False)
_rounding("round half down", ROUND_HALF_DOWN, False)


@builtin("abs", "n")
def _abs(n: Any) -> Any:
    if is_number(n) or isinstance(n, timedelta):
        return abs(n)
    if isinstance(n, Duration) and not n.tdelta:
        return Duration(years=abs(n.years), months=abs(n.months))
    return None


@builtin("modulo", "dividend, divisor")
def _modulo(a: Any, b: Any) -> Any:
    if not is_number(a) or not is_number(b) or not b:
        return None
    return a % b


@builtin("sqrt", "number")
def _sqrt(n: Any) -> float | int | None:
    if not is_number(n) or n < 0:
        return None
    if type(n) is int:
        root = math.isqrt(n)
        if root * root == n:
            return root
    return math.sqrt(n)


@builtin("log", "number")
def _log(n: Any) -> float | None:
    return math.log(n) if is_number(n) and n > 0 else None


@builtin("exp", "number")
def _exp(n: Any) -> float | None:
    return math.exp(n) if is_number(n) else None


@builtin("odd", "number")
def _odd(n: Any) -> bool | None:
    return n % 2 == 1 if is_number(n) and n == int(n) else None


@builtin("even", "number")
def _even(n: Any) -> bool | None:
    return n % 2 == 0 if is_number(n) and n == int(n) else None


# ------------------------------------------------------------------------------------ contexts


@builtin("get value", "context, key")
def _get_value(context: Any, key: Any) -> Any:
    if not isinstance(context, Mapping):
        return None
    if isinstance(key, str):
        return context.get(key)
    if isinstance(key, list) and all(isinstance(k, str) for k in key):
        value: Any = context
        for k in key:
            if not isinstance(value, Mapping):
                return None
            value = value.get(k)
        return value
    return None


@builtin("get entries", "context")
def _get_entries(context: Any) -> list[dict[str, Any]] | None:
    if not isinstance(context, Mapping):
        return None
    return [{"key": k, "value": v} for k, v in context.items()]


@builtin("context put", "context, key, value")
def _context_put(context: Any, key: Any, value: Any) -> dict[str, Any] | None:
    if not isinstance(context, Mapping):
        return None
    if isinstance(key, str):
        return {**context, key: value}
    if isinstance(key, list) and key and all(isinstance(k, str) for k in key):
        head, *rest = key
        if not rest:
            return {**context, head: value}
        inner = context.get(head)
        nested = _context_put(inner if isinstance(inner, Mapping) else {}, rest, value)
        return {**context, head: nested}
    return None


@builtin("context merge", "contexts")
def _context_merge(contexts: Any) -> dict[str, Any] | None:
    if not isinstance(contexts, list) or not all(isinstance(c, Mapping) for c in contexts):
        return None
    merged: dict[str, Any] = {}
    for c in contexts:
        merged.update(c)
    return merged


@builtin("context", "entries")
def _context(entries: Any) -> dict[str, Any] | None:
    if not isinstance(entries, list):
        return None
    result: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("key"), str) or "value" not in entry:
            return None
        result[entry["key"]] = entry["value"]
    return result
