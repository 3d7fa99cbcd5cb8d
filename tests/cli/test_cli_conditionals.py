"""``natsflow evaluate-conditions``: the conditional-evaluate endpoint from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from cli_kit import Stack

RESTOCK = (Path(__file__).parents[1] / "models" / "restock.bpmn").read_text()


async def test_evaluate_conditions_starts_and_prints_the_instances(stack: Stack, tmp_path: Path) -> None:
    model = tmp_path / "restock.bpmn"
    model.write_text(RESTOCK)
    assert (await stack.invoke("deploy", str(model))).exit_code == 0
    args = ("evaluate-conditions", "--process", "restock", "--vars", '{"stock": 2}', "--id", "e1")
    reply = json.loads((await stack.invoke(*args, "-o", "json")).stdout)
    [started] = reply["started"]
    assert (started["process_id"], started["start_event"], reply["failed"]) == ("restock", "low", [])
    text = (await stack.invoke(*args)).stdout
    assert text.strip() == f"started {started['instance']} (restock v1, low)"
    quiet = await stack.invoke("evaluate-conditions", "--process", "restock", "--vars", '{"stock": 20}')
    assert quiet.stdout.strip() == "no conditional start event holds"
    bad = await stack.invoke("evaluate-conditions", "--process", "restock", "--max-starts", "0")
    assert bad.exit_code == 1 and "max_starts must be between 1 and 1000" in str(bad.exception)
