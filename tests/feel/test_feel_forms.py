"""FEEL if/for/some/every, filters and indexes, function definitions and named arguments."""

from __future__ import annotations

from typing import Any

import pytest
from natsflow_engine.feel import FeelFunction, compile_expression

VARS: dict[str, Any] = {
    "nums": [1, 2, 3, 4, 5],
    "orders": [
        {"id": "a", "amount": 5, "status": "open"},
        {"id": "b", "amount": 50, "status": "closed"},
        {"id": "c", "amount": 500, "status": "open"},
    ],
    "amount": 1000,
    "i": 2,
    "scalar": 7,
    "nothing": None,
}


def ev(source: str, variables: dict[str, Any] | None = None) -> Any:
    return compile_expression(source).evaluate(VARS if variables is None else variables)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("if true then 1 else 2", 1),
        ("if false then 1 else 2", 2),
        ("if null then 1 else 2", 2),
        ('if "yes" then 1 else 2', 2),
        ('if amount > 100 then "big" else "small"', "big"),
        ("if unknown then 1 else if amount > 1 then 2 else 3", 2),
        ("if true then if false then 1 else 2 else 3", 2),
        ("(if true then 1 else 2) + 1", 2),
    ],
)
def test_if(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("for x in [1, 2, 3] return x * 2", [2, 4, 6]),
        ("for x in [] return x", []),
        ("for x in 1..3 return x", [1, 2, 3]),
        ("for x in 3..1 return x", [3, 2, 1]),
        ("for x in [1..3] return x", [1, 2, 3]),
        ("for x in (1..3) return x", [2]),
        ("for x in 1..i return x", [1, 2]),
        ("for x in [1, 2], y in [10, 20] return x + y", [11, 21, 12, 22]),
        ("for x in 1..3, y in x..3 return [x, y]", [[1, 1], [1, 2], [1, 3], [2, 2], [2, 3], [3, 3]]),
        ("for o in orders return o.id", ["a", "b", "c"]),
        ("for x in nums return if x > 3 then x else null", [None, None, None, 4, 5]),
        ("for i in 1..4 return if i <= 2 then 1 else partial[-1] + partial[-2]", [1, 1, 2, 3]),
        ("for x in nothing return x", None),
        ("for x in scalar return x", [7]),
        ("for x in [1, 2] return i", [2, 2]),
        ("for i in [5] return i", [5]),
        ("sum(for x in nums return x)", 15),
    ],
)
def test_for(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("some x in [1, 2, 3] satisfies x > 2", True),
        ("some x in [1, 2, 3] satisfies x > 3", False),
        ("some x in [] satisfies x > 3", False),
        ("some x in [null, 5] satisfies x > 3", True),
        ("some x in [null] satisfies x > 3", False),
        ("every x in [1, 2, 3] satisfies x > 0", True),
        ("every x in [1, 2, 3] satisfies x > 1", False),
        ("every x in [] satisfies x > 1", True),
        ("every x in [1, null] satisfies x > 0", False),
        ("some o in orders satisfies o.amount > 100", True),
        ('every o in orders satisfies o.status = "open"', False),
        ("some x in [1, 2], y in [2, 3] satisfies x = y", True),
        ("every x in [1, 2], y in [3, 4] satisfies x < y", True),
        ("some x in nothing satisfies x", None),
        ("every x in 1..3 satisfies x <= 3", True),
    ],
)
def test_quantifiers(source: str, expected: Any) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("nums[item > 3]", [4, 5]),
        ("nums[item > 10]", []),
        ("nums[1]", 1),
        ("nums[5]", 5),
        ("nums[-1]", 5),
        ("nums[-5]", 1),
        ("nums[0]", None),
        ("nums[6]", None),
        ("nums[-6]", None),
        ("nums[i]", 2),
        ("nums[i + 1]", 3),
        ("nums[1.5]", None),
        ("orders[amount > 10]", [VARS["orders"][1], VARS["orders"][2]]),
        ("orders[amount > 10].id", ["b", "c"]),
        ("orders[item.amount > 10].id", ["b", "c"]),
        ('orders[status = "open" and amount < 100].id', ["a"]),
        ("orders[1].id", "a"),
        ("orders[-1].amount", 500),
        ("[1, null, 3][item != null]", [1, 3]),
        ("[[1, 2], [3]][count(item) > 1]", [[1, 2]]),
        ("[{a: 1}, {a: 2}][a = 2]", [{"a": 2}]),
        ("scalar[item > 5]", [7]),
        ("scalar[1]", 7),
        ("nothing[item > 1]", None),
        ("nothing[1]", None),
        ("[][item > 1]", []),
        ("nums[item > amount]", []),
        ("nums[true]", [1, 2, 3, 4, 5]),
        ("nums[false]", []),
        ("[1, 2, 3][item > 1][1]", 2),
        ("[[1, 2], [3, 4]][2][1]", 3),
    ],
)
def test_filters_and_indexes(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{f: function(x) x * 2, r: f(21)}.r", 42),
        ("{add: function(a, b) a + b, r: add(b: 2, a: 40)}.r", 42),
        ("{k: 10, f: function(x) x + k, r: f(1)}.r", 11),
        ("{f: function(x) x, r: f()}.r", None),
        ("{f: 1, r: f(1)}.r", None),
        ("sort([3, 1, 2], function(a, b) a > b)", [3, 2, 1]),
        ("sort(orders, function(x, y) x.amount > y.amount)[1].id", "c"),
    ],
)
def test_function_definitions(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_function_value() -> None:
    fn = ev("function(a, b) a + b")
    assert isinstance(fn, FeelFunction)
    assert fn.params == ("a", "b")
    assert fn(1, 2) == 3


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('contains(string: "abc", match: "b")', True),
        ('contains(match: "b", string: "abc")', True),
        ("count(list: [1, 2])", 2),
        ("max(list: [1, 2])", 2),
        ("date(year: 2024, month: 1, day: 2)", ev('date("2024-01-02")')),
        ('date(from: "2024-01-02")', ev('date("2024-01-02")')),
        ('string join(list: ["a", "b"], delimiter: "-")', "a-b"),
    ],
)
def test_named_arguments(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_function_literals_in_loops_capture_their_own_iteration() -> None:
    fns = ev("for x in [1, 2] return function(y) x + y")
    assert [f(10) for f in fns] == [11, 12]
    captured = ev("for x in [1, 2], y in [10] return function() x + y")
    assert [f() for f in captured] == [11, 12]


def test_nested_loops_and_filters_see_outer_names() -> None:
    assert ev("for x in [1, 2] return for y in [10, 20] return x + y") == [[11, 21], [12, 22]]
    assert ev("for limit in [1, 3] return nums[item > limit]") == [[2, 3, 4, 5], [4, 5]]
    assert ev("some o in orders satisfies o.amount > amount / 10") is True
    assert ev("orders[some x in [50, 500] satisfies x = amount].id") == ["b", "c"]
