"""Worker failures: retried by default after a back-off on the engine's clock, not retried when
the handler says so (JobFailure)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from modelkit import chain, model, service

from natsflow.testing import ProcessTestEngine
from natsflow.worker import Job, JobConsumerSettings, JobFailure

Checkpoint = Callable[[], Awaitable[None]]
BODY = '<bpmn:startEvent id="s" />' + service("charge", "charge", retries=3) + '<bpmn:endEvent id="e" />'


async def test_a_failure_that_is_not_retried_is_an_incident_at_once(
    kit: ProcessTestEngine, checkpoint: Checkpoint
) -> None:
    await kit.deploy(model("p", BODY + chain("s", "charge", "e")))
    iid = await kit.start_instance("p", {"card": ""})
    await checkpoint()
    attempts: list[int] = []

    @kit.task("charge")
    async def charge(job: Job) -> dict[str, object]:
        attempts.append(job.retries_left)
        if not job.variables["card"]:
            raise JobFailure("no card number in the order", retry=False)
        return {"charged": True}

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert attempts == [2]  # one attempt; the two attempts left were not used
    assert [(i.element_id, i.kind, i.message) for i in snap.incidents] == [
        ("charge", "job-failed", "no card number in the order")
    ]
    await checkpoint()
    await kit.resolve_incident(iid, snap.incidents[0].id, {"card": "4111"})
    snap = await kit.instance(iid)
    assert snap.state == "completed" and snap.variables == {"card": "4111", "charged": True}
    assert len(attempts) == 2


async def test_a_job_failure_is_retried_by_default(kit: ProcessTestEngine, checkpoint: Checkpoint) -> None:
    await kit.deploy(model("p", BODY + chain("s", "charge", "e")))
    iid = await kit.start_instance("p")
    await checkpoint()
    attempts: list[int] = []

    @kit.task("charge")
    async def charge(job: Job) -> None:
        attempts.append(job.retries_left)
        raise JobFailure("the payment service is down")

    await kit.wait_until_idle()
    assert attempts == [2]  # the next attempt waits for its back-off, on the engine's clock
    await checkpoint()
    await kit.advance_time(timedelta(seconds=0.999))
    assert attempts == [2]
    await kit.advance_time(timedelta(seconds=0.001))  # the default back-off: 1 s, then 2 s
    assert attempts == [2, 1]
    await kit.advance_time(timedelta(seconds=1.5))
    assert attempts == [2, 1]
    await kit.advance_time(timedelta(seconds=0.5))
    snap = await kit.instance(iid)
    assert attempts == [2, 1, 0]  # the default retries="3": three attempts in all
    assert [(i.kind, i.message) for i in snap.incidents] == [("job-failed", "the payment service is down")]
    failed = [e.data for e in snap.history if e.type == "job-failed"]
    assert [(d or {}).get("retries") for d in failed] == [2, 1]


async def test_a_task_definition_backoff_is_used_and_cancel_drops_the_retry(
    kit: ProcessTestEngine, checkpoint: Checkpoint
) -> None:
    await kit.deploy(model("p", BODY + chain("s", "charge", "e")))
    iid = await kit.start_instance("p")
    attempts: list[int] = []

    async def charge(job: Job) -> None:
        attempts.append(job.attempt)
        raise RuntimeError("down")

    kit.worker.task("charge", consumer=JobConsumerSettings(backoff=(30.0,)))(charge)
    await kit.wait_until_idle()
    await kit.advance_time(timedelta(seconds=29))
    assert attempts == [1]
    await kit.advance_time(timedelta(seconds=1))
    assert attempts == [1, 2]
    await checkpoint()
    await kit.cancel_instance(iid)
    await kit.advance_time(timedelta(minutes=5))
    assert attempts == [1, 2] and (await kit.instance(iid)).state == "cancelled"
    assert not kit.timers.pending
