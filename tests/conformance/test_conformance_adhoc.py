"""Ad-hoc sub-processes: parallel and sequential ordering, completion condition with and without
cancelling what still runs, Camunda 8's activeElementsCollection."""

from __future__ import annotations

import pytest
from conftest_engine import record_jobs
from modelkit import chain, model, service, user_task

from natsflow.testing import ProcessTestEngine


def adhoc(inner: str, attrs: str = "", extra: str = "") -> str:
    return (
        '<bpmn:startEvent id="s" />'
        f'<bpmn:adHocSubProcess id="adhoc" {attrs}>{extra}{inner}</bpmn:adHocSubProcess>'
        + service("after", "w") + '<bpmn:endEvent id="e" />' + chain("s", "adhoc", "after", "e")
    )  # fmt: skip


INNER = service("a", "w") + service("b", "w") + service("c", "w") + chain("b", "c")


@pytest.mark.parametrize("ordering", ["Parallel", "Sequential"])
async def test_adhoc_runs_each_activity_without_incoming_flow(kit: ProcessTestEngine, checkpoint, ordering: str):
    await kit.deploy(model("p", adhoc(INNER, f'ordering="{ordering}"')))
    iid = await kit.start_instance("p")
    await checkpoint()
    # a and b have no incoming flow; c follows b
    expected_active = ["a", "b"] if ordering == "Parallel" else ["a"]
    assert (await kit.instance(iid)).active_elements == ["adhoc", *expected_active]
    ran = record_jobs(kit, "w")

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed" and sorted(ran) == ["a", "after", "b", "c"]
    if ordering == "Sequential":
        assert ran == ["a", "b", "c", "after"]


async def test_adhoc_completion_condition_cancels_what_still_runs(kit: ProcessTestEngine, checkpoint):
    inner = service("a", "w") + user_task("review")
    body = adhoc(inner, extra="<bpmn:completionCondition>=enough</bpmn:completionCondition>")
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p", {"enough": False})
    await checkpoint()

    @kit.task("w")
    async def w(job):
        return {"enough": job.element_id == "a"}

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    # a's completion made the condition true: the open review was cancelled, 'after' ran
    assert snap.state == "completed" and "review" not in snap.completed_elements
    assert await kit.user_tasks(iid) == []


async def test_adhoc_without_cancelling_waits_for_what_runs(kit: ProcessTestEngine, checkpoint):
    inner = service("a", "w") + user_task("review")
    body = adhoc(
        inner, 'cancelRemainingInstances="false"', "<bpmn:completionCondition>=true</bpmn:completionCondition>"
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")

    @kit.task("w")
    async def w(job):
        return None

    await kit.wait_until_idle()
    await checkpoint()
    assert (await kit.instance(iid)).active_elements == ["adhoc", "review"]
    [task] = await kit.user_tasks(iid)
    await kit.complete_user_task(task.id)
    assert (await kit.instance(iid)).state == "completed"


async def test_adhoc_active_elements_collection_chooses_what_starts(kit: ProcessTestEngine, checkpoint):
    zeebe = '<bpmn:extensionElements><zeebe:adHoc activeElementsCollection="=chosen" /></bpmn:extensionElements>'
    await kit.deploy(model("p", adhoc(INNER, extra=zeebe)))
    iid = await kit.start_instance("p", {"chosen": ["b"]})
    bad = await kit.start_instance("p", {"chosen": ["nope"]})
    await checkpoint()
    assert (await kit.instance(iid)).active_elements == ["adhoc", "b"]
    [incident] = (await kit.instance(bad)).incidents
    assert incident.element_id == "adhoc" and "not elements of the ad-hoc sub-process" in incident.message
