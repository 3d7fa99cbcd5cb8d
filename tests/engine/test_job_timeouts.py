"""A job whose workers never answer (crash, hang) becomes an incident once its consumer's
deliveries are used up, and a retry after resolving the incident runs it again."""

from __future__ import annotations

import asyncio

from modelkit import chain, model, service
from natsflow_engine.runtime.setup import JobConsumerSettings

from natsflow.testing import ProcessTestEngine


async def test_job_that_never_answers_becomes_an_incident(kit: ProcessTestEngine):
    await kit.deploy(model("p", '<bpmn:startEvent id="s" />' + service("t", "hang") + '<bpmn:endEvent id="e" />'
                           + chain("s", "t", "e")))
    iid = await kit.start_instance("p")
    calls = 0
    release = asyncio.Event()

    async def hang(job):
        nonlocal calls
        calls += 1
        if not release.is_set():
            raise asyncio.CancelledError  # the handler dies without an answer, like a killed worker

    # a short ack wait and two deliveries: the server gives up on the job after ~2 s
    kit.worker.task("hang", consumer=JobConsumerSettings(timeout=1.0, retries=1))(hang)
    for _ in range(100):
        snap = await kit.instance(iid)
        if snap.incidents:
            break
        await asyncio.sleep(0.1)
    assert [(i.element_id, i.kind) for i in snap.incidents] == [("t", "job-failed")]
    assert "without an answer" in snap.incidents[0].message
    assert calls == 2
    release.set()
    await kit.resolve_incident(iid, snap.incidents[0].id)
    await kit.wait_until_idle()
    assert (await kit.instance(iid)).state == "completed"
