"""natsflow's processes set the garbage collector's thresholds (``natsflow_engine.gcpolicy``)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from natsflow_engine import gcpolicy

from natsflow.cli import common


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, gcpolicy.DEFAULT), ("", gcpolicy.DEFAULT), ("700,10,10", (700, 10, 10)), (" off ", None)],
)
def test_thresholds_read_from_the_variable(value: str | None, expected: tuple[int, int, int] | None) -> None:
    assert gcpolicy.thresholds(value) == expected


@pytest.mark.parametrize("value", ["1,2", "a,b,c", "0,10,10", "700,-1,10", "700,10,10,10"])
def test_a_wrong_value_names_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match=gcpolicy.ENV):
        gcpolicy.thresholds(value)


def test_tune_sets_them_and_off_leaves_them(restored: None) -> None:
    gc.set_threshold(700, 10, 10)
    assert gcpolicy.tune({gcpolicy.ENV: "off"}) == (700, 10, 10)
    assert gcpolicy.tune({}) == gcpolicy.DEFAULT == gc.get_threshold()
    assert gcpolicy.tune({gcpolicy.ENV: "1000,5,50"}) == (1000, 5, 50)


def test_every_command_runs_with_them(restored: None, monkeypatch: pytest.MonkeyPatch) -> None:
    gc.set_threshold(700, 10, 10)
    monkeypatch.delenv(gcpolicy.ENV, raising=False)

    async def thresholds() -> tuple[int, int, int]:
        return gc.get_threshold()

    assert common.run(thresholds()) == gcpolicy.DEFAULT


def test_a_wrong_variable_stops_a_command_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from natsflow.cli import main; main()", "workflows"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, gcpolicy.ENV: "many"},
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"error: {gcpolicy.ENV} must be three integers 'gen0,gen1,gen2' (gen0 at least 1) or 'off', not 'many'"
    )
