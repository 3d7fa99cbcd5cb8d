"""Every built-in function (temporal ones are in test_feel_temporal.py), with wrong-type cases."""

from __future__ import annotations

import math
from typing import Any

import pytest
from natsflow_engine.feel import compile_expression

VARS: dict[str, Any] = {"s": "Hello World", "xs": [3, 1, 2], "m": {"a": 1, "b": {"c": 2}}, "x": None}


def ev(source: str) -> Any:
    return compile_expression(source).evaluate(VARS)


CASES: list[tuple[str, Any]] = [
    # boolean
    ("not(true)", False),
    ("is defined(s)", True),
    ("is defined(x)", True),
    ("is defined(missing)", False),
    ("is defined(m.a)", True),
    ("is defined(m.b.c)", True),
    ("is defined(m.z)", False),
    ("is defined(s.z)", False),
    ("is defined(1)", True),
    ("get or else(x, 5)", 5),
    ("get or else(1, 5)", 1),
    # conversion
    ("string(1)", "1"),
    ("string(1.5)", "1.5"),
    ("string(-0.25)", "-0.25"),
    ("string(true)", "true"),
    ('string("a")', "a"),
    ("string(null)", None),
    ('string([1, "a", null])', '[1, "a", null]'),
    ("string({a: 1})", "{a:1}"),
    ('string(date("2024-01-02"))', "2024-01-02"),
    ('string(duration("PT90M"))', "PT1H30M"),
    ('number("42")', 42),
    ('number("-1.5")', -1.5),
    ('number("1e3")', 1000.0),
    ('number("abc")', None),
    ('number("")', None),
    ("number(true)", None),
    ('number("1 000,5", " ", ",")', 1000.5),
    ('number("1,000.5", ",", ".")', 1000.5),
    # strings
    ("string length(s)", 11),
    ('string length("")', 0),
    ("string length(1)", None),
    ("upper case(s)", "HELLO WORLD"),
    ("lower case(s)", "hello world"),
    ("upper case(1)", None),
    ('substring("foobar", 3)', "obar"),
    ('substring("foobar", 3, 3)', "oba"),
    ('substring("foobar", -2, 1)', "a"),
    ('substring("foobar", 1, 0)', ""),
    ('substring("foobar", 10)', ""),
    ("substring(1, 1)", None),
    ('substring before("foobar", "bar")', "foo"),
    ('substring before("foobar", "xyz")', ""),
    ('substring after("foobar", "ob")', "ar"),
    ('substring after("foobar", "")', "foobar"),
    ('contains(s, "World")', True),
    ('contains(s, "world")', False),
    ("contains(s, 1)", None),
    ('starts with(s, "Hell")', True),
    ('ends with(s, "World")', True),
    ('ends with(s, "x")', False),
    ('trim("  a b  ")', "a b"),
    ('is blank("  ")', True),
    ('is blank("a")', False),
    ('matches("foobar", "^fo*b")', True),
    ('matches("foobar", "^x")', False),
    ('matches("FOO", "foo", "i")', True),
    ('matches("a", "(")', None),
    ('replace("abcd", "(ab)|(a)", "[1=$1][2=$2]")', "[1=ab][2=]cd"),
    ('replace("a.b.c", "\\.", "/")', "a/b/c"),
    ('replace("Abc", "a", "x", "i")', "xbc"),
    ('split("John Doe", "\\s")', ["John", "Doe"]),
    ('split("a;b;;c", ";")', ["a", "b", "", "c"]),
    ('extract("a1b22c333", "[0-9]+")', ["1", "22", "333"]),
    ('string join(["a", "b", "c"], ", ")', "a, b, c"),
    ('string join(["a", null, "c"])', "ac"),
    ('string join(["a"], ",", "[", "]")', "[a]"),
    ('string join([1], ",")', None),
    # numbers
    ("floor(1.5)", 1),
    ("floor(-1.5)", -2),
    ("floor(1.56, 1)", 1.5),
    ("ceiling(1.2)", 2),
    ("ceiling(-1.5)", -1),
    ("ceiling(1.21, 1)", 1.3),
    ("decimal(1/3, 2)", 0.33),
    ("decimal(2.5, 0)", 2),
    ("decimal(3.5, 0)", 4),
    ("round up(5.5, 0)", 6),
    ("round up(-5.5, 0)", -6),
    ("round down(5.5, 0)", 5),
    ("round half up(2.5, 0)", 3),
    ("round half up(-2.5, 0)", -3),
    ("round half down(2.5, 0)", 2),
    ("round half up(1.255, 2)", 1.26),
    ('floor("1")', None),
    ("abs(-3)", 3),
    ("abs(2.5)", 2.5),
    ('abs("a")', None),
    ("modulo(10, 3)", 1),
    ("modulo(-10, 3)", 2),
    ("modulo(10, -3)", -2),
    ("modulo(10, 0)", None),
    ("sqrt(16)", 4),
    ("sqrt(-1)", None),
    ("log(1)", 0.0),
    ("log(0)", None),
    ("exp(0)", 1.0),
    ("odd(3)", True),
    ("even(3)", False),
    ("even(2.5)", None),
    # lists
    ("list contains(xs, 2)", True),
    ("list contains(xs, 9)", False),
    ("list contains([null], null)", True),
    ("list contains(1, 1)", None),
    ("count(xs)", 3),
    ("count([])", 0),
    ("count(1)", None),
    ("min(xs)", 1),
    ("min(3, 1, 2)", 1),
    ("max(xs)", 3),
    ("max([])", None),
    ('max(["a", "c", "b"])', "c"),
    ('max([1, "a"])', None),
    ("sum(xs)", 6),
    ("sum(1, 2.5)", 3.5),
    ("sum([])", 0),
    ('sum([1, "a"])', None),
    ("product([2, 3, 4])", 24),
    ("mean(xs)", 2),
    ("mean([1, 2])", 1.5),
    ("mean([])", None),
    ("median([3, 1, 2])", 2),
    ("median([1, 2, 3, 4])", 2.5),
    ("mode([1, 2, 2, 3, 3])", [2, 3]),
    ("all([true, true])", True),
    ("all([true, false])", False),
    ("all([true, null])", None),
    ("all([])", True),
    ("any([false, true])", True),
    ("any([false, null])", None),
    ("any([])", False),
    ("sublist([1, 2, 3], 2)", [2, 3]),
    ("sublist([1, 2, 3], 1, 2)", [1, 2]),
    ("sublist([1, 2, 3], -1)", [3]),
    ("sublist([1, 2, 3], 5)", None),
    ("append([1], 2, 3)", [1, 2, 3]),
    ("append([1], [2])", [1, [2]]),
    ("concatenate([1], [2, 3], [])", [1, 2, 3]),
    ("concatenate([1], 2)", None),
    ("insert before([1, 3], 2, 2)", [1, 2, 3]),
    ("insert before([1, 3], 5, 2)", None),
    ("remove([1, 2, 3], 2)", [1, 3]),
    ("remove([1, 2, 3], -1)", [1, 2]),
    ("reverse([1, 2, 3])", [3, 2, 1]),
    ("index of([1, 2, 3, 2], 2)", [2, 4]),
    ("index of([1], 5)", []),
    ("union([1, 2], [2, 3])", [1, 2, 3]),
    ("distinct values([1, 2, 1, 3, 2])", [1, 2, 3]),
    ("distinct values([[1], [1], {a: 1}, {a: 1}])", [[1], {"a": 1}]),
    ("duplicate values([1, 2, 1, 1])", [1]),
    ("flatten([[1, 2], [[3]], 4])", [1, 2, 3, 4]),
    ("sort([3, 1, 2])", [1, 2, 3]),
    ('sort(["b", "a"])', ["a", "b"]),
    ('sort([1, "a"])', None),
    ("sort([3, 1, 2], function(x, y) x > y)", [3, 2, 1]),
    ("is empty([])", True),
    ("is empty([1])", False),
    ("partition([1, 2, 3], 2)", [[1, 2], [3]]),
    # contexts
    ('get value(m, "a")', 1),
    ('get value(m, "zz")', None),
    ('get value(m, ["b", "c"])', 2),
    ('get value(1, "a")', None),
    ("get entries({a: 1})", [{"key": "a", "value": 1}]),
    ('context put({a: 1}, "b", 2)', {"a": 1, "b": 2}),
    ('context put({a: {b: 1}}, ["a", "c"], 2)', {"a": {"b": 1, "c": 2}}),
    ("context merge([{a: 1}, {b: 2}, {a: 3}])", {"a": 3, "b": 2}),
    ('context([{key: "a", value: 1}])', {"a": 1}),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_builtin(source: str, expected: Any) -> None:
    result = ev(source)
    if isinstance(expected, float):
        assert isinstance(result, float)
        assert math.isclose(result, expected)
    else:
        assert result == expected
        assert type(result) is type(expected)


def test_stddev() -> None:
    assert math.isclose(ev("stddev([2, 4, 7, 5])"), 2.0816659994661326)
    assert ev("stddev([1])") is None


def test_context_put_does_not_mutate_input() -> None:
    data = {"m": {"a": 1}}
    assert compile_expression('context put(m, "b", 2)').evaluate(data) == {"a": 1, "b": 2}
    assert data == {"m": {"a": 1}}


def test_built_ins_never_raise_on_wrong_types() -> None:
    from natsflow_engine.feel.functions import BUILTINS

    junk = ["null", "1", '"s"', "true", "[1]", "{a: 1}", 'date("2024-01-01")', 'duration("P1D")']
    for name, fn in BUILTINS.items():
        if fn.clock:
            continue
        for count in range(4):
            if not fn.accepts(count):
                continue
            for value in junk:
                source = f"{name}({', '.join([value] * count)})"
                compile_expression(source).evaluate({})  # must not raise
