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

# Cases whose expected log no execution of betsy's own model can produce: the log natsflow
# leaves instead (what the model says) and why. Both ad-hoc models log SCRIPT_task1 and
# SCRIPT_task2 inside the ad-hoc sub-process and SCRIPT_task1 again in the task after it; no
# element of either model logs SCRIPT_task3, which betsy's case expects (the expectation was
# copied from another test; the models' own comment says ad-hoc sub-processes were not
# supported by the engines betsy ran, so no run ever checked it).
_ADHOC = "no element of the model logs SCRIPT_task3; its expected log was not written from it"
DIVERGENCES: dict[str, tuple[list[str], str, str]] = {
    # case id: (natsflow's log, the expected line no element can log, the reason)
    "AdHocSubProcess_Sequential-1": (["SCRIPT_task1", "SCRIPT_task1", "SCRIPT_task2"], "SCRIPT_task3", _ADHOC),
    "AdHocSubProcess_Parallel-1": (["SCRIPT_task1", "SCRIPT_task1", "SCRIPT_task2"], "SCRIPT_task3", _ADHOC),
}


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
    log = await run_case(kit, case, model)
    if case.id in DIVERGENCES:
        ours, unreachable, _reason = DIVERGENCES[case.id]
        # the divergence holds only while the model still has no element logging that line
        assert unreachable in case.expected and f">{unreachable}<" not in model.decode()
        assert log == ours
        return
    assert log == sorted(case.expected)
