"""Contract tests of every API endpoint, through ApiClient, against a real engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from api_kit import INVALID, REVIEW, WAITER, Api
from natsflow_engine import catalog, layout
from natsflow_engine.api import protocol as p
from natsflow_engine.errors import InvalidNameError, UnsupportedError

from natsflow.errors import BpmnValidationError, ConflictError, NotFoundError, PayloadTooLargeError

T = TypeVar("T")


async def until(fetch: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout: float = 10.0) -> T:
    async with asyncio.timeout(timeout):
        while True:
            value = await fetch()
            if check(value):
                return value
            await asyncio.sleep(0.02)


async def _started_with_task(api: Api, **variables: Any) -> tuple[str, str]:
    started = await api.client.start("review", variables, wait=True)
    assert started.created
    view = await until(lambda: api.client.instance(started.instance), lambda v: bool(v.active_elements))
    task = view.active_elements[0].user_task
    assert task is not None
    await until(lambda: api.client.tasks(started.instance), bool)
    return started.instance, task


async def test_deploy_and_read_workflows(api: Api) -> None:
    deployed = await api.client.deploy(REVIEW, name="review.bpmn")
    assert [(d.process_id, d.version, d.created) for d in deployed] == [("review", 1, True)]
    again = await api.client.deploy(REVIEW, name="review.bpmn")
    assert [(d.version, d.created) for d in again] == [(1, False)]
    await api.client.deploy(REVIEW.replace('name="Review"', 'name="Review 2"'), name="review.bpmn")
    assert [(w.process_id, w.version, w.name) for w in await api.client.workflows()] == [
        ("review", 2, "review.bpmn")
    ]
    got = await api.client.workflow("review", source=True)
    assert (got.version, got.latest_version, got.versions) == (2, 2, [1, 2])
    assert got.source is not None and "Review 2" in got.source
    first = await api.client.workflow("review", 1)
    assert first.version == 1 and first.source is None
    with pytest.raises(NotFoundError):
        await api.client.workflow("nope")
    with pytest.raises(NotFoundError):
        await api.client.workflow("review", 7)


async def test_deploy_reports_validation_errors_with_lines(api: Api) -> None:
    with pytest.raises(BpmnValidationError) as caught:
        await api.client.deploy(INVALID, name="broken.bpmn")
    assert [(i.line, i.element_id) for i in caught.value.errors] == [(5, "f1")]
    assert "nowhere" in caught.value.errors[0].message
    with pytest.raises(BpmnValidationError, match="not well-formed"):
        await api.client.deploy("this is not xml")


async def test_start_get_history_list_and_cancel(api: Api) -> None:
    await api.client.deploy(REVIEW)
    with pytest.raises(NotFoundError):
        await api.client.start("missing")
    first = await api.client.start("review", {"x": 1}, key="order-1", business_key="B-1", wait=True)
    assert not first.duplicate and first.created
    assert first.instance == layout.idempotent_instance_id(api.tenant, "review", "order-1")
    again = await api.client.start("review", {"x": 2}, key="order-1")
    assert again.duplicate and again.instance == first.instance
    others = [(await api.client.start("review", {"x": n}, wait=True)).instance for n in range(4)]

    view = await until(lambda: api.client.instance(first.instance), lambda v: bool(v.active_elements))
    assert (view.state, view.business_key, view.variables) == ("active", "B-1", {"x": 1})
    [active] = view.active_elements
    assert active.element_id == "check" and active.user_task == f"{first.instance}.{active.ei}"
    history = await api.client.history(first.instance)
    assert history.records[0].step == 1 and not history.more
    assert history.records[0].events[0].type == "instance-started"
    assert (await api.client.history(first.instance, after_step=1)).records == []

    # the index entry follows the record within the same step
    await until(lambda: api.client.instances(state="active"), lambda v: len(v.instances) == 5)
    listed = await api.client.instances(limit=2)
    assert len(listed.instances) == 2 and listed.cursor
    rest = await api.client.instances(limit=10, cursor=listed.cursor)
    ids = [i.id for i in listed.instances + rest.instances]
    assert sorted(ids) == sorted([first.instance, *others]) and rest.cursor is None
    by_key = await api.client.instances(business_key="B-1")
    assert [i.id for i in by_key.instances] == [first.instance]

    cancelled = await api.client.cancel(others[0], reason="test")
    assert cancelled.accepted and cancelled.instance == others[0]
    await until(lambda: api.client.instance(others[0]), lambda v: v.state == "cancelled")
    with pytest.raises(ConflictError):
        await api.client.cancel(others[0])
    only = await until(lambda: api.client.instances(state="cancelled"), lambda v: bool(v.instances))
    assert [i.id for i in only.instances] == [others[0]]
    assert (await api.client.instances(process_id="other")).instances == []
    with pytest.raises(NotFoundError):
        await api.client.instance("0000000000000000dead")
    with pytest.raises(NotFoundError):
        await api.client.history("0000000000000000dead")
    with pytest.raises(NotFoundError):
        await api.client.cancel("0000000000000000dead")


async def test_user_tasks_claim_and_complete(api: Api) -> None:
    await api.client.deploy(REVIEW)
    iid, task = await _started_with_task(api)
    tasks = await api.client.tasks(iid)
    assert [(t.id, t.element_id, t.name, t.assignee) for t in tasks] == [(task, "check", "Check it", None)]
    assert [t.id for t in await api.client.tasks()] == [task]
    claimed = await api.client.claim_task(task, "ann")
    assert claimed.assignee == "ann"
    assert (await api.client.claim_task(task, "ann")).assignee == "ann"  # idempotent
    with pytest.raises(ConflictError):
        await api.client.claim_task(task, "bob")
    assert (await api.client.claim_task(task, "bob", force=True)).assignee == "bob"
    assert [t.id for t in await api.client.tasks(assignee="bob")] == [task]
    assert await api.client.tasks(assignee="ann") == []
    assert (await api.client.claim_task(task, None)).assignee is None

    done = await api.client.complete_task(task, {"x": 50})
    assert (done.id, done.instance) == (task, iid)
    view = await until(lambda: api.client.instance(iid), lambda v: v.state == "completed")
    assert view.variables == {"x": 50} and view.active_elements == []
    assert await api.client.tasks(iid) == []
    with pytest.raises(NotFoundError):
        await api.client.complete_task(task)
    with pytest.raises(NotFoundError):
        await api.client.claim_task("nope.3", "ann")
    with pytest.raises(InvalidNameError, match="invalid task") as refused:  # malformed, not unknown
        await api.client.complete_task("not a task id")
    assert refused.value.api_code == "invalid.name" and refused.value.field == "task"


async def test_incidents_list_and_resolve(api: Api) -> None:
    await api.client.deploy(REVIEW)
    iid, task = await _started_with_task(api)
    await api.client.complete_task(task)  # no x: the gateway's conditions fail -> incident
    view = await until(lambda: api.client.instance(iid), lambda v: bool(v.incidents))
    incident = view.incidents[0]
    assert (incident.element_id, incident.kind, incident.instance) == ("gw", "expression", iid)
    assert [i.id for i in await api.client.incidents()] == [incident.id]
    assert [i.id for i in await api.client.incidents(iid)] == [incident.id]
    assert await api.client.incidents(process_id="other") == []
    resolved = await api.client.resolve_incident(incident.id, {"x": 3})
    assert (resolved.id, resolved.instance) == (incident.id, iid)
    view = await until(lambda: api.client.instance(iid), lambda v: v.state == "completed")
    assert view.incidents == [] and view.variables == {"x": 3}
    with pytest.raises(NotFoundError):
        await api.client.resolve_incident(incident.id)
    with pytest.raises(NotFoundError):
        await api.client.resolve_incident("nothing.1.1")


async def test_messages_and_signals(api: Api) -> None:
    if api.server.handlers.messaging is None:
        with pytest.raises(UnsupportedError, match="not available"):
            await api.client.publish_message("paid", correlation_key="o-1", variables={"a": 1}, ttl=10)
        with pytest.raises(UnsupportedError):
            await api.client.broadcast_signal("go")
        return
    await api.client.deploy(WAITER)
    iid = (await api.client.start("waiter", {"orderId": "o-1"}, wait=True)).instance
    await until(
        lambda: api.client.instance(iid), lambda v: [a.element_id for a in v.active_elements] == ["wait"]
    )
    published = await api.client.publish_message(
        "paid", correlation_key="o-1", variables={"amount": 5}, ttl=10
    )
    assert published.accepted and published.detail == {"reached": 1}
    view = await until(lambda: api.client.instance(iid), lambda v: v.state == "completed")
    assert view.variables == {"orderId": "o-1", "amount": 5}
    assert (await api.client.publish_message("paid", correlation_key="nobody")).detail == {"reached": 0}
    assert (await api.client.broadcast_signal("go", {"x": 1})).detail == {"reached": 0}


async def test_trigger_listing(api: Api) -> None:
    assert await api.client.triggers() == []
    record = catalog.TriggerRecord(
        tenant=api.tenant,
        name="orders",
        subject=f"in.{api.tenant}.orders",
        stream="",
        consumer="c",
        process_id="review",
    )
    kv = await api.nc.jetstream().key_value(layout.BUCKET_TRIGGERS)
    await kv.put(layout.trigger_key(api.tenant, "orders"), catalog.encode_record(record))
    [view] = await api.client.triggers()
    assert (view.name, view.process_id, view.launched, view.pending) == ("orders", "review", 0, None)


async def test_too_large_variables(api: Api) -> None:
    await api.client.deploy(REVIEW)
    with pytest.raises(PayloadTooLargeError) as caught:
        await api.client.start("review", {"blob": "x" * 70_000})
    assert "limit" in str(caught.value)
    assert isinstance(await api.client.start("review", {"blob": "x" * 100}), p.StartReply)
