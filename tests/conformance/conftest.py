"""Conformance fixtures: the engine scenario fixtures (a test kit per test, run steady and
restarted at each wait state) and the model helpers of tests/engine."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))

from conftest_engine import checkpoint, kit

__all__ = ["checkpoint", "kit"]
