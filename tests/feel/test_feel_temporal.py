"""FEEL dates, times, durations: parsing, arithmetic, comparison, properties, clock, JSON output."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from natsflow_engine.errors import FeelEvaluationError
from natsflow_engine.feel import FeelRange, compile_expression, evaluation_clock, to_json_value
from natsflow_engine.feel.values import Duration

NOW = datetime(2024, 2, 29, 23, 30, 15, tzinfo=UTC)


def ev(source: str, variables: dict[str, Any] | None = None, now: datetime | None = NOW) -> Any:
    return compile_expression(source).evaluate(variables or {}, now=now)


PLUS_ONE = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('date("2024-01-31")', date(2024, 1, 31)),
        ("date(2024, 1, 31)", date(2024, 1, 31)),
        ('date(date and time("2024-01-31T10:00:00"))', date(2024, 1, 31)),
        ('date("2024-02-30")', None),
        ('date("2024-1-1")', None),
        ('date("garbage")', None),
        ("date(1)", None),
        ('time("10:15:30")', time(10, 15, 30)),
        ('time("10:15:30.5")', time(10, 15, 30, 500000)),
        ('time("10:15:30Z")', time(10, 15, 30, tzinfo=UTC)),
        ('time("10:15:30+01:00")', time(10, 15, 30, tzinfo=PLUS_ONE)),
        ("time(10, 15, 30)", time(10, 15, 30)),
        ('time(10, 15, 30, duration("PT1H"))', time(10, 15, 30, tzinfo=PLUS_ONE)),
        ('time("25:00:00")', None),
        ('date and time("2024-01-31T10:15:30")', datetime(2024, 1, 31, 10, 15, 30)),
        ('date and time("2024-01-31T10:15:30Z")', datetime(2024, 1, 31, 10, 15, 30, tzinfo=UTC)),
        ('date and time("2024-01-31T10:15:30+01:00")', datetime(2024, 1, 31, 10, 15, 30, tzinfo=PLUS_ONE)),
        (
            'date and time("2024-01-31T10:15:30@Europe/Berlin")',
            datetime(2024, 1, 31, 10, 15, 30, tzinfo=ZoneInfo("Europe/Berlin")),
        ),
        ('date and time("2024-01-31T10:15:30@No/Such_Zone")', None),
        ('date and time("2024-01-31")', None),
        ('date and time(date("2024-01-31"), time("10:00:00"))', datetime(2024, 1, 31, 10)),
        ('duration("P1D")', timedelta(days=1)),
        ('duration("PT1H30M")', timedelta(hours=1, minutes=30)),
        ('duration("P1DT0.5S")', timedelta(days=1, milliseconds=500)),
        ('duration("-PT5M")', timedelta(minutes=-5)),
        ('duration("P2W")', timedelta(days=14)),
        ('duration("P1Y2M")', Duration(years=1, months=2)),
        ('duration("P14M")', Duration(years=1, months=2)),
        ('duration("P1Y2D")', None),
        ('duration("P")', None),
        ('duration("PT")', None),
        ('duration("1D")', None),
        ('@"2024-01-31"', date(2024, 1, 31)),
        ('@"10:00:00"', time(10)),
        ('@"2024-01-31T10:00:00Z"', datetime(2024, 1, 31, 10, tzinfo=UTC)),
        ('@"P3D"', timedelta(days=3)),
    ],
)
def test_construction(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('date("2024-01-31") + duration("P1D")', date(2024, 2, 1)),
        ('duration("P1D") + date("2024-01-31")', date(2024, 2, 1)),
        ('date("2024-01-31") + duration("P1M")', date(2024, 2, 29)),
        ('date("2024-03-31") - duration("P1M")', date(2024, 2, 29)),
        ('date("2024-01-01") - duration("P1D")', date(2023, 12, 31)),
        ('date("2024-03-01") - date("2024-02-01")', timedelta(days=29)),
        ('date("2024-01-01") - date("2024-01-03")', timedelta(days=-2)),
        (
            'date and time("2024-01-01T10:00:00") + duration("PT90M")',
            datetime(2024, 1, 1, 11, 30),
        ),
        (
            'date and time("2024-01-01T10:00:00Z") - date and time("2024-01-01T09:00:00+01:00")',
            timedelta(hours=2),
        ),
        ('date and time("2024-01-01T10:00:00Z") - date and time("2024-01-01T09:00:00")', None),
        ('date and time("2024-01-31T10:00:00") + duration("P1M")', datetime(2024, 2, 29, 10)),
        ('time("23:00:00") + duration("PT2H")', time(1)),
        ('time("10:00:00") - time("09:30:00")', timedelta(minutes=30)),
        ('duration("P1D") + duration("PT1H")', timedelta(days=1, hours=1)),
        ('duration("P1D") - duration("PT1H")', timedelta(hours=23)),
        ('duration("P1Y") + duration("P2M")', Duration(years=1, months=2)),
        ('duration("P1Y") - duration("P2M")', Duration(months=10)),
        ('duration("P1Y") + duration("P1D")', None),
        ('duration("PT1H") * 2', timedelta(hours=2)),
        ('2 * duration("PT1H")', timedelta(hours=2)),
        ('duration("PT1H") / 2', timedelta(minutes=30)),
        ('duration("P1D") / duration("PT1H")', 24),
        ('duration("P1Y") * 2', Duration(years=2)),
        ('duration("P1Y") / duration("P1M")', 12),
        ('-duration("P1D")', timedelta(days=-1)),
        ('date("2024-01-01") + 1', None),
        ('date("2024-01-01") + date("2024-01-01")', None),
        ('abs(duration("-P1D"))', timedelta(days=1)),
    ],
)
def test_arithmetic(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('date("2024-01-01") < date("2024-01-02")', True),
        ('date("2024-01-01") = date("2024-01-01")', True),
        ('date("2024-01-01") = "2024-01-01"', None),
        ('date("2024-01-01") < date and time("2024-01-02T00:00:00")', None),
        ('date and time("2024-01-01T10:00:00Z") = date and time("2024-01-01T11:00:00+01:00")', True),
        ('date and time("2024-01-01T10:00:00Z") < date and time("2024-01-01T10:00:00")', None),
        ('time("10:00:00Z") = time("11:00:00+01:00")', True),
        ('duration("P1D") > duration("PT23H")', True),
        ('duration("P1Y") > duration("P11M")', True),
        ('duration("P1Y") > duration("P1D")', None),
        ('date("2024-01-15") in [date("2024-01-01")..date("2024-01-31")]', True),
        ('date("2024-01-15") between date("2024-01-01") and date("2024-01-31")', True),
        ('date("2024-02-29") = today()', True),
        ('now() > date and time("2024-01-01T00:00:00Z")', True),
    ],
)
def test_comparison(source: str, expected: Any) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('date("2024-01-31").year', 2024),
        ('date("2024-01-31").month', 1),
        ('date("2024-01-31").day', 31),
        ('date("2024-01-31").weekday', 3),
        ('date and time("2024-01-31T10:15:30").hour', 10),
        ('date and time("2024-01-31T10:15:30").minute', 15),
        ('date and time("2024-01-31T10:15:30").second', 30),
        ('date and time("2024-01-31T10:15:30@Europe/Berlin").timezone', "Europe/Berlin"),
        ('time("10:15:30").hour', 10),
        ('duration("P2DT3H4M5S").days', 2),
        ('duration("P2DT3H4M5S").hours', 3),
        ('duration("P2DT3H4M5S").minutes', 4),
        ('duration("P2DT3H4M5S").seconds', 5),
        ('duration("-PT3H").hours', -3),
        ('duration("P1Y2M").years', 1),
        ('duration("P1Y2M").months', 2),
        ('date("2024-01-31").nonsense', None),
        ("d.year", 2023),
    ],
)
def test_properties(source: str, expected: Any) -> None:
    assert ev(source, {"d": date(2023, 5, 6)}) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('years and months duration(date("2011-12-22"), date("2013-08-24"))', Duration(years=1, months=8)),
        ('years and months duration(date("2013-08-24"), date("2011-12-22"))', Duration(years=-1, months=-8)),
        ('years and months duration(date("2024-01-31"), date("2024-02-29"))', Duration(months=0)),
        ('years and months duration(date("2024-01-01"), 1)', None),
        ('day of week(date("2024-01-01"))', "Monday"),
        ('day of year(date("2024-02-01"))', 32),
        ('week of year(date("2024-01-01"))', 1),
        ('month of year(date("2024-03-01"))', "March"),
        ('last day of month(date("2024-02-10"))', 29),
        ('last day of month(date("2023-12-10"))', 31),
    ],
)
def test_temporal_functions(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_now_and_today_use_the_injected_clock() -> None:
    assert ev("now()") == NOW
    assert ev("today()") == date(2024, 2, 29)
    assert ev('today() + duration("P1D")') == date(2024, 3, 1)
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert ev("now()", now=later) == later
    assert ev("now() = now()") is True


def test_now_without_a_clock_fails_instead_of_reading_the_machine_clock() -> None:
    for source in ("now()", "today()", 'now() > @"2020-01-01T00:00:00Z"'):
        with pytest.raises(FeelEvaluationError, match="need the evaluation clock"):
            ev(source, now=None)


def test_evaluation_clock_sets_the_clock_of_every_evaluation_in_the_block() -> None:
    step = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    own = datetime(2040, 1, 1, tzinfo=UTC)
    with evaluation_clock(step):
        assert ev("now()", now=None) == step
        assert ev("today()", now=None) == date(2031, 5, 6)
        assert ev("now()", now=own) == own  # a clock passed to the call wins
    with pytest.raises(FeelEvaluationError):
        ev("now()", now=None)  # the block's clock is gone after it


def test_clock_expressions_are_not_constant_folded() -> None:
    expr = compile_expression('now() > date and time("2025-01-01T00:00:00Z")')
    assert expr.evaluate({}, now=datetime(2024, 1, 1, tzinfo=UTC)) is False
    assert expr.evaluate({}, now=datetime(2026, 1, 1, tzinfo=UTC)) is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (date(2024, 1, 2), "2024-01-02"),
        (time(10, 0), "10:00:00"),
        (time(10, 0, tzinfo=UTC), "10:00:00Z"),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=PLUS_ONE), "2024-01-02T03:04:05+01:00"),
        (datetime(2024, 7, 2, 3, 4, 5, tzinfo=ZoneInfo("Europe/Berlin")), "2024-07-02T03:04:05+02:00"),
        (timedelta(days=1, hours=2), "P1DT2H"),
        (timedelta(minutes=90), "PT1H30M"),
        (timedelta(seconds=1.5), "PT1.5S"),
        (timedelta(0), "PT0S"),
        (timedelta(days=-1), "-P1D"),
        (Duration(years=1, months=2), "P1Y2M"),
        (Duration(months=0), "P0M"),
        (Duration(years=-2), "-P2Y"),
        (Decimal("1.50"), 1.5),
        (Decimal(2), 2),
        (Decimal("NaN"), None),
        (float("inf"), None),
        (2**4000, None),
        (2**70, 2**70),
        (FeelRange(1, 2, True, False), {"start": 1, "end": 2, "startIncluded": True, "endIncluded": False}),
        ({"d": [date(2024, 1, 1)]}, {"d": ["2024-01-01"]}),
        ((1, 2), [1, 2]),
    ],
)
def test_to_json_value(value: Any, expected: Any) -> None:
    result = to_json_value(value)
    assert result == expected
    json.dumps(result)


def test_temporal_results_round_trip_through_iso_text() -> None:
    for source in [
        'date("2024-01-31")',
        'time("10:15:30+01:00")',
        'date and time("2024-01-31T10:15:30Z")',
        'duration("P1DT2H3M4.5S")',
        'duration("P3Y4M")',
        'duration("-PT1M")',
    ]:
        value = ev(source)
        assert ev(f"@{json.dumps(to_json_value(value))}") == value
