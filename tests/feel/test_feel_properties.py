"""Property tests: the compiler never crashes, arithmetic matches a reference, JSON output is JSON."""

from __future__ import annotations

import json
import math
import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from natsflow_engine.feel import FeelRange, compile_expression, to_json_value
from natsflow_engine.feel.values import Duration

from natsflow.errors import FeelEvaluationError, FeelSyntaxError

SETTINGS = settings(max_examples=300, deadline=None)

TOKENS = [
    "a",
    "b.c",
    "1",
    "2.5",
    "-",
    "+",
    "*",
    "/",
    "**",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ".",
    "..",
    " and ",
    " or ",
    " in ",
    " between ",
    " if ",
    " then ",
    " else ",
    " for ",
    " return ",
    " some ",
    " every ",
    " satisfies ",
    " instance of ",
    "number",
    '"s"',
    "item",
    "null",
    "true",
    "function",
    "date(",
    "string length(",
    "sum(",
    "not(",
    "@",
    "`x`",
    "x",
    " ",
]
VARIABLES = {"a": [1, {"x": 2}, None], "b": {"c": 3}, "x": 4, "item": "s"}


def _check_compile_and_evaluate(source: str) -> None:
    try:
        expr = compile_expression(source)
    except FeelSyntaxError as error:
        assert 1 <= error.column <= len(source) + 1
        assert error.message
        return
    try:
        result = expr.evaluate(VARIABLES)
    except FeelEvaluationError:
        return
    json.dumps(to_json_value(result), allow_nan=False)


@SETTINGS
@given(st.text(alphabet=string.printable, max_size=40))
def test_random_ascii_only_ever_raises_feel_syntax_error(source: str) -> None:
    _check_compile_and_evaluate(source)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=16).map("".join))
def test_random_token_soup_only_ever_raises_feel_syntax_error(source: str) -> None:
    _check_compile_and_evaluate(source)


# ------------------------------------------------------------------------------ reference evaluator


@dataclass(frozen=True)
class Num:
    value: int


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Neg:
    operand: Any


@dataclass(frozen=True)
class Bin:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Not:
    operand: Any


ENV = {"x": 3, "y": -2, "z": 0, "n": None}
PREC = {
    "or": 1,
    "and": 2,
    "=": 3,
    "!=": 3,
    "<": 3,
    "<=": 3,
    ">": 3,
    ">=": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "**": 7,
}


def prec(node: Any) -> int:
    if isinstance(node, Bin):
        return PREC[node.op]
    if isinstance(node, Neg):
        return 6
    return 8


def render(node: Any) -> str:
    """FEEL text with only the parentheses precedence requires (so the parser's precedence is tested)."""
    if isinstance(node, Num):
        return str(node.value)
    if isinstance(node, Var):
        return node.name
    if isinstance(node, Not):
        return f"not({render(node.operand)})"
    if isinstance(node, Neg):
        inner = render(node.operand)
        return f"-{inner}" if prec(node.operand) >= 6 else f"-({inner})"
    p = PREC[node.op]
    left, right = render(node.left), render(node.right)
    if node.op == "**":
        left_ok, right_ok = prec(node.left) >= 7, prec(node.right) == 8
    elif p == 3:  # comparisons do not chain
        left_ok, right_ok = prec(node.left) > 3, prec(node.right) > 3
    else:  # left-associative
        left_ok, right_ok = prec(node.left) >= p, prec(node.right) > p
    left = left if left_ok else f"({left})"
    right = right if right_ok else f"({right})"
    return f"{left} {node.op} {right}"


def finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def reference(node: Any) -> Any:
    """Straightforward FEEL semantics for numbers, comparisons and three-valued logic."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Var):
        return ENV[node.name]
    if isinstance(node, Not):
        value = reference(node.operand)
        return (not value) if isinstance(value, bool) else None
    if isinstance(node, Neg):
        value = reference(node.operand)
        return -value if is_num(value) else None
    a, b = reference(node.left), reference(node.right)
    op = node.op
    if op in ("and", "or"):
        stop = op == "or"  # `or` stops on true, `and` on false
        if a is stop or b is stop:
            return stop
        return (not stop) if a is (not stop) and b is (not stop) else None
    if op in ("=", "!="):
        if a is None or b is None:
            equal = a is None and b is None
        elif (is_num(a) and is_num(b)) or type(a) is type(b):
            equal = a == b
        else:
            return None
        return equal if op == "=" else not equal
    if not (is_num(a) and is_num(b)):
        return None
    if op in ("<", "<=", ">", ">="):
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op == "+":
        return finite(a + b)
    if op == "-":
        return finite(a - b)
    if op == "*":
        return finite(a * b)
    if op == "/":
        if b == 0:
            return None
        if isinstance(a, int) and isinstance(b, int) and a % b == 0:
            return a // b
        return finite(a / b)
    try:  # "**"
        if isinstance(a, int) and isinstance(b, int) and b >= 0:
            return a**b
        if a == 0 and b < 0:
            return None
        result = float(a) ** float(b)
    except (OverflowError, ZeroDivisionError):
        return None
    return None if isinstance(result, complex) else finite(result)


numbers = st.builds(Num, st.integers(min_value=0, max_value=50)) | st.builds(
    Var, st.sampled_from(sorted(ENV))
)


def arithmetic(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.builds(Bin, st.sampled_from(["+", "-", "*", "/"]), children, children)
        | st.builds(Neg, children)
        | st.builds(Bin, st.just("**"), children, st.builds(Num, st.integers(0, 3)))
    )


arith_exprs = st.recursive(numbers, arithmetic, max_leaves=8)
comparisons = st.builds(Bin, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), arith_exprs, arith_exprs)
logic_exprs = st.recursive(
    comparisons,
    lambda children: (
        st.builds(Bin, st.sampled_from(["and", "or"]), children, children) | st.builds(Not, children)
    ),
    max_leaves=4,
)


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        return math.isclose(actual, expected, rel_tol=1e-12)
    return actual == expected and type(actual) is type(expected)


@SETTINGS
@given(arith_exprs | logic_exprs)
def test_expressions_match_reference_evaluator(node: Any) -> None:
    source = render(node)
    expected = reference(node)
    actual = compile_expression(source).evaluate(ENV)
    assert _same(actual, expected), f"{source}: {actual!r} != {expected!r}"


def test_renderer_needs_parentheses_where_precedence_demands() -> None:
    tree = Bin("*", Bin("+", Num(1), Num(2)), Neg(Bin("**", Num(2), Num(2))))
    assert render(tree) == "(1 + 2) * -2 ** 2"
    assert compile_expression(render(tree)).evaluate({}) == reference(tree) == -12


# ------------------------------------------------------------------------------ to_json_value

zones = st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-3))])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**5000), max_value=2**5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.dates(),
    st.builds(
        time, st.integers(0, 23), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999999), zones
    ),
    st.builds(lambda d, tz: d.replace(tzinfo=tz), st.datetimes(), zones),
    st.timedeltas(),
    st.builds(lambda m: Duration(years=m // 12, months=m % 12), st.integers(0, 2000)),
    st.builds(FeelRange, st.integers(), st.integers(), st.booleans(), st.booleans()),
)
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@SETTINGS
@given(json_like)
def test_to_json_value_always_survives_json_dumps(value: Any) -> None:
    json.dumps(to_json_value(value), allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_dates_round_trip_through_json(value: date) -> None:
    assert compile_expression("date(d)").evaluate({"d": to_json_value(value)}) == value


@settings(max_examples=100, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)))
def test_date_times_round_trip_through_json(value: datetime) -> None:
    assert compile_expression("date and time(d)").evaluate({"d": to_json_value(value)}) == value


@settings(max_examples=100, deadline=None)
@given(st.timedeltas(min_value=timedelta(days=-(10**6)), max_value=timedelta(days=10**6)))
def test_durations_round_trip_through_json(value: timedelta) -> None:
    assert compile_expression("duration(d)").evaluate({"d": to_json_value(value)}) == value
