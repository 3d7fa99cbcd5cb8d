"""Syntax errors (with columns and what was expected), compile-time name checks, evaluation errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from natsflow_engine.feel import compile_expression

from natsflow.errors import ExpressionError, FeelEvaluationError, FeelSyntaxError


def syntax_error(source: str) -> FeelSyntaxError:
    with pytest.raises(FeelSyntaxError) as info:
        compile_expression(source)
    error = info.value
    assert error.expression == source
    assert isinstance(error, ExpressionError)
    return error


@pytest.mark.parametrize(
    ("source", "column", "words"),
    [
        ("a > ", 5, ["end of input", "expression"]),
        ("a >", 4, ["end of input", "expression"]),
        ("foo(", 5, ["end of input", "expression", "')'"]),
        ("(1 + 2", 7, ["end of input", "')'"]),
        ("a b", 3, ["'b'", "operator", "end of input"]),
        ("1 +* 2", 4, ["'*'", "expression"]),
        ("if a then b", 12, ["'else'"]),
        ("for x in y", 11, ["'return'"]),
        ("some x in y", 12, ["'satisfies'"]),
        ("[1, 2", 6, ["']'"]),
        ("{a: 1, b}", 9, ["':'"]),
        ("{a 1}", 4, ["':'"]),
        ('"unterminated', 1, ["unterminated string"]),
        ("a # b", 3, ["'#'"]),
        ("", 1, ["empty"]),
        ("   ", 4, ["empty"]),
        ("x.", 3, ["name"]),
        ("1 = = 2", 5, ["'='", "expression"]),
        ("a\n  and", 8, ["end of input"]),
        ("x instance of ", 15, ["type"]),
        ("x instance of widget", 15, ["unknown type 'widget'"]),
        ('@"not a date"', 1, ["temporal literal"]),
        ("9" * 5000, 1, ["too large"]),
        ("9" * 400 + ".5", 1, ["too large"]),
    ],
)
def test_syntax_error_column_and_message(source: str, column: int, words: list[str]) -> None:
    error = syntax_error(source)
    assert error.column == column, error.message
    for word in words:
        assert word in error.message, error.message
    assert f"column {column}" in str(error)


@pytest.mark.parametrize(
    ("source", "column", "name"),
    [
        ("foo(1)", 1, "foo"),
        ("1 + bar()", 5, "bar"),
        ("string lenght(x)", 1, "string lenght"),
        ("1 + date and tme(x)", 14, "tme"),
        ("x or upper kase(y)", 6, "upper kase"),
        ("upper  case(x) + nope(1, 2)", 18, "nope"),
    ],
)
def test_unknown_function_is_a_syntax_error_naming_it(source: str, column: int, name: str) -> None:
    error = syntax_error(source)
    assert f"'{name}'" in error.message
    assert "unknown function" in error.message
    assert error.column == column


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("not(1, 2)", "expects 1 argument(s), got 2"),
        ("substring()", "expects 2 or 3 argument(s), got 0"),
        ("now(1)", "expects 0 argument(s)"),
        ('contains(string: "a", needle: "b")', "no parameters named"),
        ('contains(string: "a")', "expects 2 argument(s), got 1"),
    ],
)
def test_arity_and_named_arguments_checked_at_compile_time(source: str, message: str) -> None:
    assert message in syntax_error(source).message


def test_multi_word_names_need_a_call() -> None:
    # "date and time" is only a function name when a parenthesis follows
    assert compile_expression("date and time").evaluate({"date": True, "time": False}) is False
    assert compile_expression('string length  ("ab")').evaluate({}) == 2
    assert compile_expression('upper\tcase("ab")').evaluate({}) == "AB"


def test_keywords_inside_names_are_names() -> None:
    values = {"index": 1, "android": 2, "order": 3, "ifx": 4, "notes": 5, "iffy": 6, "thenx": 7}
    assert compile_expression("index + android + order + ifx + notes").evaluate(values) == 15
    assert compile_expression("if iffy > 1 then thenx else 0").evaluate(values) == 7


def test_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    error = syntax_error("[" * 400 + "]" * 400)
    assert "nested too deeply" in error.message
    assert compile_expression("(" * 400 + "1" + ")" * 400).evaluate({}) == 1
    assert compile_expression(" + ".join(["1"] * 3000)).evaluate({}) == 3000
    assert compile_expression(" and ".join(["true"] * 3000)).evaluate({}) is True


class Exploding(Mapping[str, Any]):
    """A foreign mapping whose lookups fail with something other than KeyError."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_failures_of_foreign_values_are_evaluation_errors() -> None:
    expr = compile_expression("x.y")
    with pytest.raises(FeelEvaluationError) as info:
        expr.evaluate({"x": Exploding()})
    assert info.value.expression == "x.y"
    assert "boom" in info.value.message


def test_foreign_values_compare_as_null() -> None:
    assert compile_expression("x = 1").evaluate({"x": object()}) is None
    assert compile_expression("x < 1").evaluate({"x": object()}) is None


@pytest.mark.parametrize("value", [None, 1, "s", [1], {"a": 1}, True, 1.5])
def test_wrong_types_give_null_not_errors(value: Any) -> None:
    for source in [
        "x + 1",
        "x * x",
        "x / 0",
        "upper case(x)",
        "x.y.z",
        "x[1]",
        "x[item > 1]",
        "-x",
        "x < 1",
        "x between 1 and 2",
        "floor(x)",
        "for i in x return i",
        "sum(x)",
    ]:
        compile_expression(source).evaluate({"x": value})
