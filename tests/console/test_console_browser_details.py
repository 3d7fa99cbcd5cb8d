"""Browser tests of what the first console pages lacked: variable values in a replay, forms
deployed as ``.form`` files and linked by formId, the retries of an incident."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from console_kit import APPROVE_FORM, Stack, approval, approval_with_linked_form, failing, operator_token
from natsflow_engine.errors import JobFailure
from natsflow_engine.worker import Job, Worker
from test_console_browser import _ended, drop_file, pid, shot

pytestmark = pytest.mark.timeout(180)

Open = Callable[..., Any]


def replay_rows(page: Any) -> dict[str, tuple[str, bool]]:
    """name -> (value text, set at this step) of the replay's variables table."""
    rows = page.eval_on_selector_all(
        "#replay-variables tbody tr",
        "rows => rows.map(r => [r.dataset.name, r.querySelector('td.value').textContent, r.classList.contains('changed')])",
    )
    return {name: (value, changed) for name, value, changed in rows}


def test_a_replay_shows_the_variable_values_of_each_step(
    stack: Stack, tenants: dict[str, str], open_page: Open
) -> None:
    tenant = tenants["alice"]
    api = stack.api(tenant)
    process = pid("values")
    stack.run(api.deploy(approval(process), name="approval.bpmn"))
    started = stack.run(api.start(process, {"amount": 3, "customer": {"name": "Ann"}}, wait=True))
    task = stack.run(stack.until(lambda: api.tasks(started.instance), "the user task opens"))[0]
    stack.run(api.complete_task(task.id, {"x": 20}))

    page = open_page(operator_token(tenant), f"/instances/{started.instance}")
    page.wait_for_selector("#instance-state.state-completed")
    page.wait_for_selector("#timeline li[data-step='2']")
    page.click("#replay-start")
    page.wait_for_selector("#replay-variables tr[data-name='amount']")
    assert replay_rows(page) == {"amount": ("3", True), "customer": ('{"name":"Ann"}', True)}
    page.click("#replay-next")
    page.wait_for_selector("#replay-variables tr[data-name='x']")
    assert replay_rows(page) == {
        "amount": ("3", False),
        "customer": ('{"name":"Ann"}', False),
        "x": ("20", True),
    }
    shot(page, "replay-variables")
    page.click("#replay-stop")
    page.wait_for_selector("#replay-variables tr", state="detached")


def test_a_form_file_deployed_by_drop_renders_for_the_task_that_links_it(
    stack: Stack, tenants: dict[str, str], open_page: Open
) -> None:
    tenant = tenants["alice"]
    api = stack.api(tenant)
    form_id = pid("form")
    page = open_page(operator_token(tenant), "/processes")
    page.wait_for_selector("#dropzone")
    drop_file(page, "#dropzone", "approve.form", json.dumps({**APPROVE_FORM, "id": form_id}))
    page.wait_for_selector(f"#deploy-result li[data-form='{form_id}']:has-text('v1 deployed')")

    process = pid("linked")
    stack.run(api.deploy(approval_with_linked_form(process, form_id), name="linked.bpmn"))
    started = stack.run(api.start(process, {"note": "linked"}, wait=True))
    task = stack.run(stack.until(lambda: api.tasks(started.instance), "the user task opens"))[0]
    assert task.form_id == form_id

    page.goto(f"{stack.url}/#/tasks")
    card = page.wait_for_selector(f"article[data-task='{task.id}']")
    card.query_selector("summary").click()
    page.wait_for_selector(f"article[data-task='{task.id}'] .fjs-form")
    card = page.locator(f"article[data-task='{task.id}']")
    assert card.get_by_label("Note").input_value() == "linked"
    card.get_by_label("Amount approved").fill("7")
    card.get_by_label("Note").focus()
    card.locator("button.complete").click()
    page.wait_for_selector(f"article[data-task='{task.id}']", state="detached")
    view = stack.run(stack.until(lambda: _ended(api, started.instance), "the instance completes"))
    assert view.variables == {"note": "linked", "x": 7, "approved": False}


def test_the_incident_list_shows_the_retries_left(
    stack: Stack, tenants: dict[str, str], open_page: Open
) -> None:
    tenant = tenants["alice"]
    api = stack.api(tenant)
    process, task_type = pid("failing"), pid("charge")
    assert stack.nc is not None
    worker = Worker(nc=stack.nc, tenant=tenant)

    @worker.task(task_type)
    async def charge(job: Job) -> None:
        raise JobFailure("card declined")

    stack.run(worker.start())
    try:
        stack.run(api.deploy(failing(process, task_type), name="failing.bpmn"))
        failed = stack.run(api.start(process, {}, wait=True)).instance
        stack.run(stack.until(lambda: api.incidents(failed), "the job's failure raises an incident"))
    finally:
        stack.run(worker.stop(timeout=5))
    gateway = pid("gateway")  # an incident that is not a job's: no retries
    stack.run(api.deploy(approval(gateway), name="approval.bpmn"))
    other = stack.run(api.start(gateway, {}, wait=True)).instance
    task = stack.run(stack.until(lambda: api.tasks(other), "the user task opens"))[0]
    stack.run(api.complete_task(task.id, {}))
    stack.run(stack.until(lambda: api.incidents(other), "the gateway raises an incident"))

    page = open_page(operator_token(tenant), "/incidents")
    row = page.wait_for_selector(f"#incident-rows tr:has(a:has-text('{failed}'))")
    assert row.query_selector("td.retries").inner_text() == "0"
    assert "card declined" in row.inner_text()
    row = page.wait_for_selector(f"#incident-rows tr:has(a:has-text('{other}'))")
    assert row.query_selector("td.retries").inner_text() == "—"
    headers = page.eval_on_selector_all("table.list thead th", "cells => cells.map(c => c.textContent)")
    assert "Retries" in headers
