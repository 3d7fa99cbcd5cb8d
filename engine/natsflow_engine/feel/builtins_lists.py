"""Built-in list functions (``count``, ``sum``, ``sort``, ``distinct values`` ...).

Aggregates (``min``, ``max``, ``sum``, ``mean``, ``median``, ``stddev``, ``mode``, ``product``,
``all``, ``any``) are variadic: ``max([1, 2])`` and ``max(1, 2)`` are the same call. Element
equality is FEEL equality (``1 = 1.0``, deep for lists and contexts), so ``distinct values`` and
``index of`` compare like ``=`` does. Positions are 1-based; negative positions count from the
end. Non-list arguments and elements of the wrong type give null.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from typing import Any

from .functions import builtin
from .values import FeelFunction, feel_eq, feel_lt, is_number

__all__: list[str] = []


def _values(args: tuple[Any, ...]) -> list[Any] | None:
    if len(args) == 1 and isinstance(args[0], list):
        return args[0]
    if len(args) == 1 and args[0] is None:
        return None
    return list(args)


def _numbers(args: tuple[Any, ...]) -> list[Any] | None:
    values = _values(args)
    if values is None or not all(is_number(v) for v in values):
        return None
    return values


def _contains(items: list[Any], value: Any) -> bool:
    return any(feel_eq(x, value) is True for x in items)


def _position(items: list[Any], position: Any) -> int | None:
    """0-based index of a 1-based (or negative from the end) position within ``items``."""
    if type(position) is not int or position == 0 or abs(position) > len(items):
        return None
    return position - 1 if position > 0 else len(items) + position


@builtin("list contains", "list, element")
def _list_contains(items: Any, element: Any) -> bool | None:
    return _contains(items, element) if isinstance(items, list) else None


@builtin("count", "list")
def _count(items: Any) -> int | None:
    return len(items) if isinstance(items, list) else None


def _extreme(args: tuple[Any, ...], want_max: bool) -> Any:
    values = _values(args)
    if not values:
        return None
    best = values[0]
    for value in values[1:]:
        less = feel_lt(best, value) if want_max else feel_lt(value, best)
        if less is None:
            return None
        if less:
            best = value
    if len(values) == 1 and feel_lt(best, best) is None:
        return None
    return best


@builtin("min", "list", variadic=True)
def _min(*args: Any) -> Any:
    return _extreme(args, want_max=False)


@builtin("max", "list", variadic=True)
def _max(*args: Any) -> Any:
    return _extreme(args, want_max=True)


@builtin("sum", "list", variadic=True)
def _sum(*args: Any) -> Any:
    values = _numbers(args)
    return None if values is None else sum(values)


@builtin("product", "list", variadic=True)
def _product(*args: Any) -> Any:
    values = _numbers(args)
    if not values:
        return None
    return functools.reduce(lambda a, b: a * b, values)


@builtin("mean", "list", variadic=True)
def _mean(*args: Any) -> Any:
    values = _numbers(args)
    if not values:
        return None
    total = sum(values)
    if type(total) is int and total % len(values) == 0:
        return total // len(values)
    return total / len(values)


@builtin("median", "list", variadic=True)
def _median(*args: Any) -> Any:
    values = _numbers(args)
    if not values:
        return None
    result = statistics.median(values)
    return int(result) if isinstance(result, float) and result.is_integer() else result


@builtin("stddev", "list", variadic=True)
def _stddev(*args: Any) -> Any:
    values = _numbers(args)
    if values is None or len(values) < 2:
        return None
    return statistics.stdev(float(v) for v in values)


@builtin("mode", "list", variadic=True)
def _mode(*args: Any) -> Any:
    values = _numbers(args)
    if values is None:
        return None
    if not values:
        return []
    counts: dict[Any, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    top = max(counts.values())
    return sorted(v for v, c in counts.items() if c == top)


@builtin("all", "list", variadic=True)
def _all(*args: Any) -> bool | None:
    values = _values(args)
    if values is None:
        return None
    if any(v is False for v in values):
        return False
    return True if all(v is True for v in values) else None


@builtin("any", "list", variadic=True)
def _any(*args: Any) -> bool | None:
    values = _values(args)
    if values is None:
        return None
    if any(v is True for v in values):
        return True
    return False if all(v is False for v in values) else None


@builtin("sublist", "list, start position, length?")
def _sublist(items: Any, start: Any, length: Any = None) -> list[Any] | None:
    if not isinstance(items, list):
        return None
    index = _position(items, start)
    if index is None:
        return None
    if length is None:
        return items[index:]
    if type(length) is not int or length < 0:
        return None
    return items[index : index + length]


@builtin("append", "list, items", variadic=True)
def _append(items: Any, *more: Any) -> list[Any] | None:
    return [*items, *more] if isinstance(items, list) else None


@builtin("concatenate", "lists", variadic=True)
def _concatenate(*lists: Any) -> list[Any] | None:
    if not all(isinstance(x, list) for x in lists):
        return None
    return [v for x in lists for v in x]


@builtin("insert before", "list, position, newItem")
def _insert_before(items: Any, position: Any, new_item: Any) -> list[Any] | None:
    if not isinstance(items, list):
        return None
    index = _position(items, position)
    if index is None:
        return None
    return [*items[:index], new_item, *items[index:]]


@builtin("remove", "list, position")
def _remove(items: Any, position: Any) -> list[Any] | None:
    if not isinstance(items, list):
        return None
    index = _position(items, position)
    if index is None:
        return None
    return [*items[:index], *items[index + 1 :]]


@builtin("reverse", "list")
def _reverse(items: Any) -> list[Any] | None:
    return items[::-1] if isinstance(items, list) else None


@builtin("index of", "list, match")
def _index_of(items: Any, match: Any) -> list[int] | None:
    if not isinstance(items, list):
        return None
    return [i for i, v in enumerate(items, start=1) if feel_eq(v, match) is True]


def _distinct(values: list[Any]) -> list[Any]:
    result: list[Any] = []
    for v in values:
        if not _contains(result, v):
            result.append(v)
    return result


@builtin("union", "lists", variadic=True)
def _union(*lists: Any) -> list[Any] | None:
    if not all(isinstance(x, list) for x in lists):
        return None
    return _distinct([v for x in lists for v in x])


@builtin("distinct values", "list")
def _distinct_values(items: Any) -> list[Any] | None:
    return _distinct(items) if isinstance(items, list) else None


@builtin("duplicate values", "list")
def _duplicate_values(items: Any) -> list[Any] | None:
    if not isinstance(items, list):
        return None
    seen: list[Any] = []
    duplicates: list[Any] = []
    for v in items:
        if _contains(seen, v):
            if not _contains(duplicates, v):
                duplicates.append(v)
        else:
            seen.append(v)
    return duplicates


def _flat(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in items:
        if isinstance(v, list):
            out.extend(_flat(v))
        else:
            out.append(v)
    return out


@builtin("flatten", "list")
def _flatten(items: Any) -> list[Any] | None:
    return _flat(items) if isinstance(items, list) else None


@builtin("is empty", "list")
def _is_empty(items: Any) -> bool | None:
    return not items if isinstance(items, list) else None


@builtin("partition", "list, size")
def _partition(items: Any, size: Any) -> list[list[Any]] | None:
    if not isinstance(items, list) or type(size) is not int or size <= 0:
        return None
    return [items[i : i + size] for i in range(0, len(items), size)]


def _natural_cmp(a: Any, b: Any) -> int:
    if feel_lt(a, b):
        return -1
    if feel_lt(b, a):
        return 1
    return 0


@builtin("sort", "list, precedes?")
def _sort(items: Any, precedes: Any = None) -> list[Any] | None:
    if not isinstance(items, list):
        return None
    if precedes is None:
        if items and any(feel_lt(items[0], v) is None for v in items):
            return None
        compare: Callable[[Any, Any], int] = _natural_cmp
    elif isinstance(precedes, FeelFunction):

        def compare(a: Any, b: Any) -> int:
            if precedes(a, b) is True:
                return -1
            if precedes(b, a) is True:
                return 1
            return 0

    else:
        return None
    return sorted(items, key=functools.cmp_to_key(compare))
