"""The FEEL budget: hostile expressions stop with a typed error, quickly and in little memory.

The deadlines here are correctness deadlines with wide margins (the budget is ~0.1 s of
evaluation); before the budget existed, each attack ran for seconds to hours.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from natsflow_engine.bpmn import parse_bpmn
from natsflow_engine.errors import BpmnValidationError, FeelBudgetError, FeelEvaluationError, FeelSyntaxError
from natsflow_engine.feel import DEFAULT_LIMITS, FeelLimits, compile_expression

GENEROUS = 10.0  # seconds: a correctness deadline, ~100x the budget


def ev(source: str, variables: dict[str, Any] | None = None, limits: FeelLimits | None = None) -> Any:
    return compile_expression(source).evaluate(variables or {}, limits=limits)


@contextmanager
def bounded(seconds: float = GENEROUS, megabytes: float = 64) -> Iterator[None]:
    """The block must finish within ``seconds`` and allocate at most ``megabytes`` at its peak."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        yield
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert peak < megabytes * 2**20, f"allocated {peak / 2**20:.0f} MB"


def test_a_huge_range_fails_at_once_without_building_it() -> None:
    with bounded(), pytest.raises(FeelBudgetError) as caught:
        ev("for x in 1..100000000 return x")
    assert caught.value.limit == "max_list"
    assert "a range of 100000000 members is more than the limit of 1000000 items" in str(caught.value)
    assert isinstance(caught.value, FeelEvaluationError)


@pytest.mark.parametrize(
    "source",
    [
        "some x in 1..900000 satisfies x < 0",
        "for i in 1..10000, j in 1..10000 return i",
        "count(for i in 1..2000 return for j in 1..2000 return i + j)",
        "{f: function(x) count(for i in 1..1000 return x), r: for x in 1..1000 return f(x)}.r",
        "sum(for i in 1..100000 return count(l[item > i]))",
    ],
)
def test_work_past_the_step_budget_stops_with_a_typed_error(source: str) -> None:
    with bounded(), pytest.raises(FeelBudgetError, match=f"exceeded its budget of {DEFAULT_LIMITS.max_steps} steps"):
        ev(source, {"l": list(range(1000))})


def test_growing_strings_and_lists_hit_the_size_caps() -> None:
    with bounded(), pytest.raises(FeelBudgetError) as caught:
        ev("string length(s + s)", {"s": "a" * 600_000})
    assert caught.value.limit == "max_string"
    with bounded(), pytest.raises(FeelBudgetError):
        ev("string join(l, d)", {"l": [""] * 100_000, "d": "x" * 1000})
    with bounded(), pytest.raises(FeelBudgetError):
        ev('replace(s, "", d)', {"s": "a" * 100_000, "d": "x" * 100})
    with bounded(), pytest.raises(FeelBudgetError) as caught:
        ev("count(flatten(for i in 1..100 return l))", {"l": list(range(20_000))})
    assert caught.value.limit in ("max_list", "max_steps")


def test_ordinary_work_stays_well_inside_the_budget() -> None:
    assert ev("sum(for i in 1..10000 return i * 2)") == 100010000
    assert ev("count(l[item > 5])", {"l": list(range(10_000))}) == 9994
    assert ev("count(for x in l return x.a)", {"l": [{"a": i} for i in range(10_000)]}) == 10_000


def test_limits_are_per_call() -> None:
    small = FeelLimits(max_steps=1000, max_list=200, max_string=1000)
    assert ev("count(for x in 1..100 return x)") == 100
    with pytest.raises(FeelBudgetError, match="budget of 1000 steps"):
        ev("count(for x in 1..100 return for y in 1..5 return y)", limits=small)
    with pytest.raises(FeelBudgetError, match="limit of 200 items"):
        ev("for x in 1..201 return x", limits=small)
    with pytest.raises(FeelBudgetError, match="limit of 1000 characters"):
        ev('"abcdef" + s', {"s": "x" * 995}, limits=small)


def test_catastrophic_regular_expressions_run_in_linear_time() -> None:
    hostile = "a" * 5000 + "!"
    with bounded(megabytes=256):
        assert ev('matches(s, "(a+)+$")', {"s": hostile}) is False
        assert ev('matches(s, "^(a|aa)+$")', {"s": hostile}) is False
        assert ev('replace(s, "(a*)*b", "x")', {"s": hostile}) == hostile
        assert ev('split(s, "(?:a|a)*!")', {"s": hostile}) == ["", ""]


def test_a_constant_catastrophic_pattern_does_not_stall_compilation() -> None:
    # constant arguments are folded at compile (deploy) time
    with bounded():
        expr = compile_expression('matches("' + "a" * 40 + '!", "(a+)+$")')
    assert expr.evaluate({}) is False


def test_patterns_linear_matching_cannot_run_are_refused() -> None:
    with pytest.raises(FeelSyntaxError, match="back-references"):
        compile_expression('matches(x, "(a)\\\\1")')
    with pytest.raises(FeelSyntaxError, match="look-around"):
        compile_expression('replace(x, "a(?=b)", "c")')
    with pytest.raises(FeelEvaluationError, match="back-references"):
        ev("matches(x, p)", {"x": "aa", "p": "(a)\\1"})
    assert ev('matches("a", "(")') is None  # not a regular expression at all: null, as before


def test_regex_semantics_kept_close_to_xpath() -> None:
    assert ev('matches("Straße", "^\\\\w+$")') is True  # \w is Unicode, as in XPath
    assert ev('matches("٣", "^\\\\d$")') is True
    assert ev('matches("abc\n", "abc$")') is False  # $ is the very end without the m flag
    assert ev('matches("abc\nx", "abc$", "m")') is True
    assert ev('matches("A B", "a b", "ix")') is False  # x drops the pattern's whitespace
    assert ev('matches("AB", "a b", "ix")') is True
    assert ev('matches("a.c", ".", "q")') is True
    assert ev('matches("abc", ".", "q")') is False
    assert ev('replace("abc", "(b)", "[$1]")') == "a[b]c"
    assert ev('replace("abc", "b", "\\\\$")') == "a$c"
    assert ev('replace("abc", "(b)", "$2")') is None


def test_the_hot_path_does_not_set_up_a_budget() -> None:
    simple = compile_expression("amount > 100 and customer.vip")
    looping = compile_expression("count(for x in l return x) > 1")
    assert simple._costly is False
    assert looping._costly is True


def _process(script: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="defs" targetNamespace="urn:test">'
        '<bpmn:process id="p" isExecutable="true"><bpmn:startEvent id="s" />'
        '<bpmn:scriptTask id="calc"><bpmn:extensionElements>'
        f'<zeebe:script expression="{script}" resultVariable="r" />'
        "</bpmn:extensionElements></bpmn:scriptTask><bpmn:endEvent id=\"e\" />"
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="calc" />'
        '<bpmn:sequenceFlow id="f2" sourceRef="calc" targetRef="e" /></bpmn:process></bpmn:definitions>'
    )


def test_deploy_refuses_a_constant_pattern_that_cannot_run_naming_the_element() -> None:
    with pytest.raises(BpmnValidationError) as caught:
        parse_bpmn(_process('=matches(x, &quot;(a)\\1&quot;)'))
    (issue,) = caught.value.errors
    assert issue.element_id == "calc"
    assert "back-references" in issue.message


def test_deploy_time_constants_are_bounded() -> None:
    hostile = "=matches(&quot;" + "a" * 40 + "!&quot;, &quot;(a+)+$&quot;)"
    with bounded():
        assert parse_bpmn(_process(hostile)).processes
