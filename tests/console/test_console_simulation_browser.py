"""Step-by-step simulation in a real browser (a viewer may simulate): the model waits at a
message catch, the message is fired by hand, the token reaches the end, the run exported as a
pytest module passes, and the run saved as a scenario replays to the same path in
``natsflow simulate``. Also: the instance and process
pages load without the modeler's code, which comes when the modeler opens."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from console_kit import Stack, approval, operator_token, viewer_token
from test_console_browser import pid, shot

pytestmark = pytest.mark.timeout(240)

Open = Callable[..., Any]
PAYMENT = Path(__file__).parent / "models" / "payment.bpmn"
NATSFLOW = Path(sys.executable).parent / "natsflow"


def test_a_message_fired_by_hand_takes_the_token_to_the_end(
    stack: Stack, tenants: dict[str, str], open_page: Open, tmp_path: Path
) -> None:
    page = open_page(viewer_token(tenants["alice"]), "/modeler")
    page.wait_for_selector("#validation[data-state]")
    page.set_input_files("#modeler-file", str(PAYMENT))
    page.wait_for_selector("#modeler .djs-element[data-element-id='wait']")
    page.wait_for_function("() => document.getElementById('sim-scenario').value.includes('confirm')")
    assert page.locator("#modeler-deploy").count() == 0  # a viewer simulates but does not deploy
    scenario = json.loads(page.input_value("#sim-scenario"))
    scenario["variables"] = {"orderId": "o-1"}
    page.fill("#sim-scenario", json.dumps(scenario))

    page.click("#sim-step")
    page.wait_for_selector("#sim-state:text-is('active')")
    assert page.inner_text("#sim-path") == "start → wait"
    page.wait_for_selector("#modeler .nf-token[data-element='wait']")
    page.wait_for_selector("#sim-timers li[data-element='too_late']")
    assert page.input_value("#sim-message-name") == "paid"  # offered from the model
    page.fill("#sim-advance-by", "PT20M")
    page.click("#sim-advance")
    page.wait_for_selector("#sim-clock:has-text('1200 s from the start')")
    page.fill("#sim-message-key", "o-1")
    page.fill("#sim-message-variables", '{"amount": 7}')
    shot(page, "modeler-step-by-step")

    page.click("#sim-fire-message")
    page.wait_for_selector("#sim-state:text-is('completed')")
    assert page.inner_text("#sim-path") == "start → wait → confirm → ship → paid"
    assert "reached 1 catch(es)" in page.inner_text("#sim-live-note")
    assert page.locator("#modeler .nf-token").count() == 0
    assert page.locator("#modeler .djs-element[data-element-id='paid'].nf-done").count() == 1
    assert page.inner_text("#sim-variables tr[data-name='amount'] td.value") == "7"
    assert page.locator("#sim-timers").count() == 0  # the boundary timer went with the task

    with page.expect_download() as saving:
        page.click("#sim-live-save")
    saved = tmp_path / "scenario.json"
    saving.value.save_as(saved)
    document = json.loads(saved.read_text())
    assert document["events"] == [
        {"at": "PT20M"},
        {"at": "PT20M", "message": {"name": "paid", "correlationKey": "o-1", "variables": {"amount": 7}}},
    ]
    page.click("#sim-live-export")  # the run as a pytest module with the hand-fired message
    exported = page.wait_for_selector("#sim-test").inner_text()
    assert "publish_message('paid', correlation_key='o-1', variables={'amount': 7})" in exported
    assert "timedelta(seconds=1200.0)" in exported
    module = tmp_path / "test_exported_payment.py"
    module.write_text(exported)
    passed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", str(module)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert passed.returncode == 0 and "1 passed" in passed.stdout, passed.stdout + passed.stderr
    replayed = subprocess.run(
        [str(NATSFLOW), "simulate", str(PAYMENT), "--scenario", str(saved), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr
    first = json.loads(replayed.stdout)["first"]
    assert first["path"] == ["start", "wait", "confirm", "ship", "paid"]
    assert first["variables"] == {"orderId": "o-1", "amount": 7}


def _resources(page: Any) -> dict[str, int]:
    """What the page fetched since it loaded: file name under /static/ -> bytes of body."""
    entries = page.evaluate(
        "() => performance.getEntriesByType('resource').map((e) => [e.name, e.encodedBodySize])"
    )
    return {name.rsplit("/static/", 1)[1]: size for name, size in entries if "/static/" in name}


def test_the_instance_pages_load_the_viewer_only_and_the_modeler_when_opened(
    stack: Stack, tenants: dict[str, str], open_page: Open
) -> None:
    tenant = tenants["alice"]
    api = stack.api(tenant)
    process = pid("lazy")
    stack.run(api.deploy(approval(process), name="approval.bpmn"))
    started = stack.run(api.start(process, {"amount": 1}, wait=True))
    page = open_page(operator_token(tenant), f"/instances/{started.instance}")
    page.wait_for_selector("#diagram .nf-token[data-element='approve']")
    page.goto(f"{stack.url}/#/processes/{process}?version=1")
    page.wait_for_selector(".djs-element[data-element-id='approve']")
    fetched = _resources(page)
    assert "app.js" in fetched and "app.css" in fetched
    assert not [name for name in fetched if name.startswith(("modeler", "form-view"))], fetched
    scripts = sum(size for name, size in fetched.items() if name.endswith(".js"))
    assert scripts < 600_000, fetched  # the modeler alone is over 1.5 MB

    page.click("nav a[data-nav='modeler']")
    page.wait_for_selector("#modeler .djs-palette")
    fetched = _resources(page)
    assert "modeler.js" in fetched and "modeler.css" in fetched
    assert page.evaluate("getComputedStyle(document.querySelector('#properties .bio-properties-panel')).display") != "none"
