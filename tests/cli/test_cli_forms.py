"""``natsflow deploy`` takes Camunda ``.form`` files next to BPMN files."""

from __future__ import annotations

import json
from pathlib import Path

from cli_kit import Stack

FORM = {"id": "cli-form", "type": "default", "components": [{"id": "c", "key": "x", "type": "number"}]}


async def test_deploy_a_form_file(stack: Stack, tmp_path: Path) -> None:
    form = tmp_path / "review.form"
    form.write_text(json.dumps(FORM))
    result = await stack.invoke("deploy", str(form))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"form cli-form version 1  <- {form}"
    again = json.loads((await stack.invoke("deploy", str(form), "-o", "json")).stdout)
    assert again == [{"file": str(form), "form_id": "cli-form", "version": 1, "created": False}]
    assert json.loads((await stack.api.form("cli-form")).source) == FORM

    bad = tmp_path / "bad.form"
    bad.write_text('{"id": "b"}')
    failed = await stack.invoke("deploy", str(bad))
    assert failed.exit_code == 1
    assert str(failed.exception) == f"{bad}: bad.form: components must be a list (a Camunda form schema)"
