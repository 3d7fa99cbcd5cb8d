"""betsy's BPMN conformance suite on natsflow (see betsy_adapter for what is translated how).

Run it with a copy of betsy: ``NATSFLOW_BETSY_DIR=/path/to/betsy .venv/bin/pytest -q
tests/conformance/test_betsy.py``. Without one (CI reaches no code hosts) it skips.
"""

from __future__ import annotations

import pytest
from betsy_adapter import BetsyCase, betsy_root, load_cases, run_case

from natsflow.testing import ProcessTestEngine

ROOT = betsy_root()
CASES = load_cases(ROOT) if ROOT is not None else []


@pytest.mark.skipif(
    ROOT is None, reason="no betsy copy: set NATSFLOW_BETSY_DIR to a checkout of uniba-dsg/betsy"
)
def test_betsy_lists_its_210_cases() -> None:
    assert len(CASES) == 210


@pytest.mark.skipif(
    ROOT is None, reason="no betsy copy: set NATSFLOW_BETSY_DIR to a checkout of uniba-dsg/betsy"
)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_betsy_case(kit: ProcessTestEngine, case: BetsyCase) -> None:
    assert ROOT is not None
    model = (
        ROOT / "pebl-builder/src/main/resources/files/bpmn" / case.folder / f"{case.name}.bpmn"
    ).read_bytes()
    assert await run_case(kit, case, model) == sorted(case.expected)
