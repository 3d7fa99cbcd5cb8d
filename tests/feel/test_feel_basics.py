"""FEEL literals, names and paths, null semantics, logic, arithmetic, comparisons, in/between."""

from __future__ import annotations

import math
from typing import Any

import pytest
from natsflow_engine.feel import CompiledExpression, FeelRange, compile_expression

VARS: dict[str, Any] = {
    "amount": 150,
    "price": 2.5,
    "name": "Ada",
    "flag": True,
    "off": False,
    "nothing": None,
    "customer": {"vip": True, "name": "Bo", "address": {"city": "Berlin"}},
    "orders": [{"id": 1, "amount": 5}, {"id": 2, "amount": 50}, {"id": 3}],
    "nums": [1, 2, 3, 4, 5],
    "matrix": [[1, 2], [3, 4]],
}


def ev(source: str, variables: dict[str, Any] | None = None) -> Any:
    return compile_expression(source).evaluate(VARS if variables is None else variables)


def test_contract_example() -> None:
    expr = compile_expression("amount > 100 and customer.vip")
    assert isinstance(expr, CompiledExpression)
    assert expr.source == "amount > 100 and customer.vip"
    assert expr.evaluate({"amount": 150, "customer": {"vip": True}}) is True
    assert expr.evaluate({"amount": 50, "customer": {"vip": True}}) is False
    assert expr.evaluate({}) is None
    assert expr.variables == frozenset({"amount", "customer"})


def test_compile_is_cached() -> None:
    assert compile_expression("1 + 1") is compile_expression("1 + 1")


def test_evaluate_without_context_and_with_any_mapping() -> None:
    from types import MappingProxyType

    assert compile_expression("1 + 2").evaluate() == 3
    assert compile_expression("a + 1").evaluate(MappingProxyType({"a": 1})) == 2


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1", 1),
        ("1.5", 1.5),
        ("007", 7),
        ('"hello"', "hello"),
        ('"a\\"b"', 'a"b'),
        ('"tab\\there"', "tab\there"),
        ('"line\\nbreak"', "line\nbreak"),
        ('"back\\\\slash"', "back\\slash"),
        ('"\\u00e4"', "ä"),
        ('"\\ud83d\\ude00"', "\U0001f600"),
        ('""', ""),
        ("true", True),
        ("false", False),
        ("null", None),
        ("[]", []),
        ("[1, 2, 3]", [1, 2, 3]),
        ('[1, "a", [true, null]]', [1, "a", [True, None]]),
        ("{}", {}),
        ('{a: 1, "b c": 2}', {"a": 1, "b c": 2}),
        ("{a: 1, b: a + 1, c: b * 10}", {"a": 1, "b": 2, "c": 20}),
        ("{a: {b: 1}}.a.b", 1),
        ("{`x y`: 1}", {"x y": 1}),
        ("// comment\n1 + /* inline */ 2", 3),
    ],
)
def test_literals(source: str, expected: Any) -> None:
    assert ev(source) == expected
    assert type(ev(source)) is type(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("amount", 150),
        ("customer.vip", True),
        ("customer.address.city", "Berlin"),
        ("customer.missing", None),
        ("customer.missing.deeper", None),
        ("unknown", None),
        ("unknown.path", None),
        ("name.length", None),
        ("orders.id", [1, 2, 3]),
        ("orders.amount", [5, 50, None]),
        ("orders[1].id", 1),
        ("orders[-1].id", 3),
        ("([{a: {b: 1}}, {a: {b: 2}}]).a.b", [1, 2]),
        ("nothing", None),
        ("`amount`", 150),
    ],
)
def test_names_and_paths(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_variable_holding_list_is_not_copied_for_plain_access() -> None:
    data = {"xs": [1, 2]}
    assert compile_expression("xs").evaluate(data) is data["xs"]


T, F, N = True, False, None
LOGIC_VALUES = {"true": T, "false": F, "null": N}


@pytest.mark.parametrize("left", list(LOGIC_VALUES))
@pytest.mark.parametrize("right", list(LOGIC_VALUES))
def test_three_valued_and_or(left: str, right: str) -> None:
    a, b = LOGIC_VALUES[left], LOGIC_VALUES[right]
    expected_and = F if F in (a, b) else (T if a is T and b is T else N)
    expected_or = T if T in (a, b) else (F if a is F and b is F else N)
    assert ev(f"{left} and {right}") is expected_and
    assert ev(f"{left} or {right}") is expected_or


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 and true", None),
        ('"x" or false', None),
        ('"x" or true', True),
        ("true and true and true and true", True),
        ("true and true and null and true", None),
        ("true and null and false", False),
        ("false or false or null", None),
        ("false or null or true", True),
        ("not(true)", False),
        ("not(false)", True),
        ("not(null)", None),
        ("not(1)", None),
        ("flag and not(off)", True),
        ("unknown and false", False),
    ],
)
def test_logic_edge_cases(source: str, expected: Any) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2", 3),
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 2 - 3", 5),
        ("7 / 2", 3.5),
        ("6 / 3", 2),
        ("1 / 0", None),
        ("0 / 0", None),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("2 ** 3 ** 2", 64),
        ("-2 ** 2", -4),
        ("(-2) ** 2", 4),
        ("-amount", -150),
        ("- -1", 1),
        ("price * 2", 5.0),
        ("1.5 + 1", 2.5),
        ("amount + nothing", None),
        ("amount + unknown", None),
        ('"a" + "b"', "ab"),
        ('"a" + 1', None),
        ("true + 1", None),
        ("[1] + [2]", None),
        ("-true", None),
        ('-"a"', None),
        ("(-8) ** 0.5", None),
        ("0 ** -1", None),
        ("10 ** 400 / 10 ** 399", 10),
    ],
)
def test_arithmetic(source: str, expected: Any) -> None:
    result = ev(source)
    assert result == expected
    assert type(result) is type(expected)


def test_float_overflow_is_null() -> None:
    assert ev("2.0 ** 100000") is None
    assert ev("2 ** 100000") is None  # past FEEL's precision: computed as float, overflows
    assert math.isclose(ev("2 ** 0.5"), math.sqrt(2))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2", True),
        ("2 >= 3", False),
        ("1 = 1", True),
        ("1 = 1.0", True),
        ("1 != 2", True),
        ('"a" < "b"', True),
        ('"a" = "a"', True),
        ("true = true", True),
        ("true != false", True),
        ("[1, 2] = [1, 2]", True),
        ("[1, 2] = [1, 3]", False),
        ("[1, 2] = [1]", False),
        ("{a: 1} = {a: 1}", True),
        ("{a: 1} = {a: 2}", False),
        ("{a: 1} = {b: 1}", False),
        ("1 = null", False),
        ("null = null", True),
        ("null != null", False),
        ("unknown = null", True),
        ("nothing = null", True),
        ("amount != null", True),
        ("1 < null", None),
        ("null > 1", None),
        ('1 = "1"', None),
        ('1 < "2"', None),
        ("true < false", None),
        ("1 != true", None),
        ("[1] < [2]", None),
        ("amount > 100", True),
        ("price > 2", True),
        ("price < 2", False),
        ("name > 1", None),
        ('name = "Ada"', True),
    ],
)
def test_comparison(source: str, expected: Any) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("5 between 1 and 10", True),
        ("1 between 1 and 10", True),
        ("10 between 1 and 10", True),
        ("11 between 1 and 10", False),
        ("0 between 1 and 10", False),
        ("null between 1 and 10", None),
        ('"b" between "a" and "c"', True),
        ("5 between 1 and 10 and false", False),
        ("2 in [1, 2, 3]", True),
        ("4 in [1, 2, 3]", False),
        ("null in [1, null]", True),
        ("2 in (1, 2)", True),
        ('"b" in ("a", "b")', True),
        ("2 in 2", True),
        ("2 in 3", False),
        ("3 in [1..5]", True),
        ("5 in [1..5]", True),
        ("5 in [1..5)", False),
        ("1 in (1..5]", False),
        ("0 in [1..5]", False),
        ("2 in [[1..3], [7..9]]", True),
        ("8 in [[1..3], [7..9]]", True),
        ("5 in [[1..3], [7..9]]", False),
        ("3 in < 5", True),
        ("7 in < 5", False),
        ("5 in >= 5", True),
        ("3 in (< 2, > 4)", False),
        ("5 in (< 2, > 4)", True),
        ("3 in (< 2, 3)", True),
        ("null in < 5", None),
        ("amount in [100..200]", True),
        ('"b" in ["a".."c"]', True),
        ("[1, 2] in [[1, 2], [3]]", True),
    ],
)
def test_ranges_in_between(source: str, expected: Any) -> None:
    assert ev(source) is expected


def test_range_values() -> None:
    assert ev("[1..5]") == FeelRange(1, 5, True, True)
    assert ev("(1..amount)") == FeelRange(1, 150, False, False)
    assert ev("r", {"r": None}) is None
    assert compile_expression("x in r").evaluate({"x": 3, "r": ev("[1..5]")}) is True


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 instance of number", True),
        ("1.5 instance of number", True),
        ("true instance of number", False),
        ('"a" instance of string', True),
        ("true instance of boolean", True),
        ("[1] instance of list", True),
        ("{} instance of context", True),
        ('date("2024-01-01") instance of date', True),
        ('date and time("2024-01-01T10:00:00") instance of date and time', True),
        ('date and time("2024-01-01T10:00:00") instance of date', False),
        ('time("10:00:00") instance of time', True),
        ('duration("P1D") instance of days and time duration', True),
        ('duration("P1Y") instance of years and months duration', True),
        ("null instance of Null", True),
        ("1 instance of Any", True),
        ("null instance of number", False),
    ],
)
def test_instance_of(source: str, expected: Any) -> None:
    assert ev(source) is expected
