"""The console in a real headless browser (Debian's chromium driven by Playwright).

Each test deploys what it needs, starts instances through the API and checks what the pages
show; every test fails on a JavaScript console error (``console_errors``). Screenshots go to
``$NATSFLOW_CONSOLE_SCREENSHOTS`` when set (docs/images is made that way).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from console_kit import EXAMPLE, Stack, approval, approval_with_form, operator_token, viewer_token

pytestmark = pytest.mark.timeout(180)

Open = Callable[..., Any]


def shot(page: Any, name: str) -> None:
    folder = os.environ.get("NATSFLOW_CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"console-{name}.png"), full_page=True)


def pid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def drop_file(page: Any, selector: str, name: str, text: str) -> None:
    """Drag-and-drop a file onto ``selector`` (a DataTransfer built in the page)."""
    page.evaluate(
        """([selector, name, text]) => {
            const data = new DataTransfer();
            data.items.add(new File([text], name, { type: 'application/xml' }));
            const target = document.querySelector(selector);
            target.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }));
            target.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
        }""",
        [selector, name, text],
    )


def marked(page: Any, element: str, marker: str) -> bool:
    return bool(
        page.evaluate(
            '([id, m]) => !!document.querySelector(`#diagram .djs-element[data-element-id="${id}"].${m}`)',
            [element, marker],
        )
    )


def test_deploy_example_by_drop_and_see_the_active_token(
    stack: Stack, tenants: dict[str, str], open_page: Open
) -> None:
    tenant = tenants["alice"]
    page = open_page(operator_token(tenant), "/processes")
    page.wait_for_selector("#dropzone")
    drop_file(page, "#dropzone", "order-fulfilment.bpmn", EXAMPLE.read_text())
    page.wait_for_selector("#deploy-result a:has-text('order-fulfilment v')")
    page.wait_for_selector("#process-rows tr[data-process='order-fulfilment']")
    shot(page, "processes")

    api = stack.api(tenant)
    order = {"orderId": "o-1", "items": [{"sku": "A", "price": 20, "quantity": 1}], "card": "4111"}
    started = stack.run(api.start("order-fulfilment", order, business_key="order-1", wait=True))
    page.goto(f"{stack.url}/#/instances/{started.instance}")
    token = page.wait_for_selector(".nf-token[data-element='check_stock']")
    assert token.inner_text() == "1"
    page.wait_for_selector(".nf-count[data-element='compute_total']")
    assert marked(page, "compute_total", "nf-done")
    assert marked(page, "check_stock", "nf-active")
    assert page.inner_text("#instance-state") == "active"
    assert '"total": 20' in page.inner_text("#scopes")
    shot(page, "instance")

    page.goto(f"{stack.url}/#/instances?business_key=order-1")
    page.wait_for_selector(f"tr[data-instance='{started.instance}']")
    assert page.locator("#instance-rows tr").count() == 1


def test_a_refused_deploy_shows_the_validator_errors_at_their_elements(
    tenants: dict[str, str], open_page: Open, console_errors: list[str]
) -> None:
    broken = approval(pid("broken")).replace("=x &gt; 10", "=x &gt;&gt; ) 10")
    page = open_page(operator_token(tenants["alice"]), "/processes")
    page.wait_for_selector("#dropzone")
    drop_file(page, "#dropzone", "broken.bpmn", broken)
    page.wait_for_selector("#deploy-issues li[data-element='f_big']")
    assert "not a valid FEEL expression" in page.inner_text("#deploy-issues")
    badge = page.wait_for_selector("#deploy-diagram .nf-error-badge[data-element='gw']")
    assert "neither a condition" in (badge.get_attribute("title") or "")
    page.wait_for_selector("#deploy-diagram .nf-error-badge[data-element='f_big']")
    shot(page, "deploy-errors")
    # chromium logs the expected 422 reply of the deploy as a console error: only that one goes
    console_errors.remove(
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    )


def test_an_instance_turns_complete_live_and_replays_step_by_step(
    stack: Stack, tenants: dict[str, str], open_page: Open
) -> None:
    tenant = tenants["alice"]
    api = stack.api(tenant)
    process = pid("approval")
    stack.run(api.deploy(approval(process), name="approval.bpmn"))
    started = stack.run(api.start(process, {"amount": 3}, wait=True))
    page = open_page(operator_token(tenant), f"/instances/{started.instance}")
    page.wait_for_selector(".nf-token[data-element='approve']")

    task = stack.run(stack.until(lambda: api.tasks(started.instance), "the user task opens"))[0]
    stack.run(api.complete_task(task.id, {"x": 20}))
    page.wait_for_selector("#instance-state.state-completed:text-is('completed')")
    page.wait_for_selector(".nf-token", state="detached")
    assert marked(page, "end_big", "nf-done")
    assert not marked(page, "end_small", "nf-done")

    page.click("#replay-start")
    page.wait_for_selector("#replay-position:has-text('step 1 of')")
    assert page.locator(".nf-token[data-element='approve']").count() == 1
    assert not marked(page, "end_big", "nf-done")
    page.click("#replay-next")
    page.wait_for_selector("#replay-position:has-text('step 2 of')")
    assert page.locator(".nf-token").count() == 0
    assert marked(page, "end_big", "nf-done")
    assert page.inner_text("#instance-state").startswith("completed")
    shot(page, "replay")
    page.click("#replay-prev")
    page.wait_for_selector(".nf-token[data-element='approve']")
    page.click("#replay-stop")
    page.wait_for_selector(".nf-token", state="detached")


def test_heatmap_counts_match_the_running_instances(
    stack: Stack, tenants: dict[str, str], open_page: Open
) -> None:
    tenant = tenants["alice"]
    api = stack.api(tenant)
    process = pid("heat")
    stack.run(api.deploy(approval(process), name="approval.bpmn"))
    ids = [stack.run(api.start(process, {}, wait=True)).instance for _ in range(3)]
    tasks = stack.run(stack.until(lambda: _open_tasks(api, ids, 3), "three user tasks open"))
    stack.run(api.complete_task(tasks[0].id, {}))  # x missing: the gateway raises an incident

    page = open_page(operator_token(tenant), f"/processes/{process}?version=1")
    page.wait_for_selector(".nf-heat[data-element='approve']")
    page.wait_for_selector(".nf-incident-badge[data-element='gw']")
    assert page.inner_text(".nf-heat[data-element='approve']") == "2"
    assert page.inner_text(".nf-incident-badge[data-element='gw']") == "1"
    assert page.get_attribute("#heatmap-summary", "data-instances") == "3"
    shot(page, "heatmap")

    page.goto(f"{stack.url}/#/instances?process={process}&state=active")
    page.wait_for_selector(
        f"tr[data-instance='{tasks[0].instance}'] td.incidents"
    )  # the one with the incident
    assert page.locator("#instance-rows tr").count() == 3
    shot(page, "instances")


async def _open_tasks(api: Any, ids: list[str], count: int) -> list[Any]:
    tasks = [t for t in await api.tasks() if t.instance in ids]
    return tasks if len(tasks) == count else []


def test_an_incident_is_resolved_in_place(stack: Stack, tenants: dict[str, str], open_page: Open) -> None:
    tenant = tenants["alice"]
    api = stack.api(tenant)
    process = pid("incident")
    stack.run(api.deploy(approval(process), name="approval.bpmn"))
    started = stack.run(api.start(process, {}, wait=True))
    task = stack.run(stack.until(lambda: api.tasks(started.instance), "the user task opens"))[0]
    stack.run(api.complete_task(task.id, {}))
    stack.run(stack.until(lambda: api.incidents(started.instance), "the gateway raises an incident"))

    page = open_page(operator_token(tenant), "/incidents")
    row = page.wait_for_selector(f"#incident-rows tr:has(a:has-text('{started.instance}'))")
    assert "gw" in row.inner_text()
    shot(page, "incidents")
    row.query_selector("input.vars-editor").fill('{"x": 5}')
    row.query_selector("button.resolve").click()
    page.wait_for_selector(f"#incident-rows tr:has(a:has-text('{started.instance}'))", state="detached")
    view = stack.run(stack.until(lambda: _ended(api, started.instance), "the instance completes"))
    assert view.state == "completed"
    assert view.variables["x"] == 5


async def _ended(api: Any, instance: str) -> Any:
    view = await api.instance(instance)
    return view if view.state != "active" else None


def test_a_user_task_is_claimed_and_completed_from_the_inbox(
    stack: Stack, tenants: dict[str, str], open_page: Open
) -> None:
    tenant = tenants["alice"]
    api = stack.api(tenant)
    process = pid("inbox")
    stack.run(api.deploy(approval(process), name="approval.bpmn"))
    started = stack.run(api.start(process, {"amount": 12}, wait=True))
    task = stack.run(stack.until(lambda: api.tasks(started.instance), "the user task opens"))[0]

    page = open_page(operator_token(tenant), "/tasks?group=sales")
    card = page.wait_for_selector(f"article[data-task='{task.id}']")
    card.query_selector("button.claim").click()
    page.wait_for_selector(f"article[data-task='{task.id}'] .assignee:has-text('alice')")
    card = page.wait_for_selector(f"article[data-task='{task.id}']")
    card.query_selector("summary").click()
    card.query_selector("textarea.task-variables").fill('{"x": 3, "approved": true}')
    shot(page, "tasks")
    card.query_selector("button.complete").click()
    page.wait_for_selector(f"article[data-task='{task.id}']", state="detached")
    view = stack.run(stack.until(lambda: _ended(api, started.instance), "the instance completes"))
    assert view.state == "completed"
    assert view.variables == {"amount": 12, "x": 3, "approved": True}


def test_a_user_task_is_completed_through_its_camunda_form(
    stack: Stack, tenants: dict[str, str], open_page: Open
) -> None:
    tenant = tenants["alice"]
    api = stack.api(tenant)
    process = pid("form")
    stack.run(api.deploy(approval_with_form(process), name="approval-form.bpmn"))
    started = stack.run(api.start(process, {"note": "from the start"}, wait=True))
    task = stack.run(stack.until(lambda: api.tasks(started.instance), "the user task opens"))[0]
    assert task.form_key == "camunda-forms:bpmn:approveForm"

    page = open_page(operator_token(tenant), "/tasks")
    card = page.wait_for_selector(f"article[data-task='{task.id}']")
    card.query_selector("summary").click()
    page.wait_for_selector(f"article[data-task='{task.id}'] .fjs-form")
    card = page.locator(f"article[data-task='{task.id}']")
    assert card.get_by_label("Note").input_value() == "from the start"
    card.locator("button.complete").click()  # x is required: the form refuses
    page.wait_for_selector(
        f"article[data-task='{task.id}'] .error:has-text('Check the form: Amount approved')"
    )
    card.get_by_label("Amount approved").fill("42")
    box = card.get_by_role("checkbox", name="Approved")
    # focus first: form-js re-renders when the number field loses focus, and a click that
    # arrives within the same instant (Playwright's do) is undone by that render
    box.focus()
    box.click()
    assert box.is_checked()
    shot(page, "task-form")
    card.locator("button.complete").click()
    page.wait_for_selector(f"article[data-task='{task.id}']", state="detached")
    view = stack.run(stack.until(lambda: _ended(api, started.instance), "the instance completes"))
    assert view.state == "completed"
    assert view.variables == {"note": "from the start", "x": 42, "approved": True}


def test_a_viewer_sees_the_instance_but_no_controls(
    stack: Stack, tenants: dict[str, str], open_page: Open
) -> None:
    tenant = tenants["alice"]
    api = stack.api(tenant)
    process = pid("viewer")
    stack.run(api.deploy(approval(process), name="approval.bpmn"))
    started = stack.run(api.start(process, {"amount": 1}, wait=True))
    task = stack.run(stack.until(lambda: api.tasks(started.instance), "the user task opens"))[0]

    page = open_page(viewer_token(tenant), f"/instances/{started.instance}")
    page.wait_for_selector(".nf-token[data-element='approve']")
    assert "read-only" in page.inner_text("#who")
    assert page.locator("#cancel, .set-variables, .resolve").count() == 0
    page.goto(f"{stack.url}/#/tasks")
    page.wait_for_selector(f"article[data-task='{task.id}']")
    assert page.locator("button.claim, button.complete").count() == 0
    page.goto(f"{stack.url}/#/processes")
    page.wait_for_selector("#process-rows")
    assert page.locator("#dropzone").count() == 0


def test_a_user_of_tenant_b_sees_nothing_of_tenant_a(
    stack: Stack, tenants: dict[str, str], open_page: Open
) -> None:
    api_a = stack.api(tenants["alice"])
    process = pid("secret")
    stack.run(api_a.deploy(approval(process), name="approval.bpmn"))
    started = stack.run(api_a.start(process, {"note": "only-for-tenant-a"}, wait=True))
    stack.run(stack.until(lambda: api_a.tasks(started.instance), "a's user task opens"))

    page = open_page(operator_token(tenants["bob"]), "/instances")
    page.wait_for_selector("text=No instances match.")
    assert "tenant " + tenants["bob"] in page.inner_text("#who")
    page.goto(f"{stack.url}/#/processes")
    page.wait_for_selector("text=Nothing deployed yet.")
    page.goto(f"{stack.url}/#/tasks")
    page.wait_for_selector("text=No open tasks.")
    page.goto(f"{stack.url}/#/incidents")
    page.wait_for_selector("text=No open incidents.")
    for path in (
        f"/api/instances/{started.instance}",
        f"/api/instances/{started.instance}/history",
        f"/api/instances/{started.instance}/live",
        f"/api/processes/{process}",
    ):
        response = page.request.get(stack.url + path)
        assert response.status == 404, path
        assert "only-for-tenant-a" not in response.text() and tenants["alice"] not in response.text(), path
