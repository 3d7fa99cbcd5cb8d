"""A poison job (its handler always raises) becomes an incident after its retries; the other
instances flow on."""

from __future__ import annotations

from collections import Counter

import pytest
from natsflow_engine import layout
from natsflow_engine.runtime.setup import JobConsumerSettings, LayoutSettings
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.worker import Job, Worker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

COUNT = 200
ATTEMPTS = 3  # the first delivery and two retries (max_deliver 3; the model allows 3 retries)


async def test_poison_job_becomes_incident_others_complete(server: EmbeddedNatsServer, harness_factory):
    h = await harness_factory(server.url, LayoutSettings(command_ack_wait=5.0))
    await h.start_engine("engine")
    runs: Counter[str] = Counter()
    attempts: dict[str, list[int]] = {}
    worker = Worker(nc=await h.connect())
    h.worker = worker

    @worker.task("check", concurrency=32, consumer=JobConsumerSettings(retries=ATTEMPTS - 1, timeout=5.0))
    async def check(job: Job) -> dict[str, bool]:
        runs[job.instance_id] += 1
        attempts.setdefault(job.instance_id, []).append(job.attempt)
        if job.variables["amount"] % 25 == 0:
            raise RuntimeError("poison: this job always fails")
        return {"checked": True}

    await worker.start()
    await h.launch(COUNT)
    poisoned = {iid for n, iid in enumerate(h.ids) if n % 25 == 0}
    # healthy instances write 2 history records (launch, job completed); poisoned ones 6: the
    # launch, then per failed attempt a step (retry scheduled, or the incident at the last) and
    # per retry the step its back-off timer fires (1 s, then 2 s: the worker's default)
    await h.wait_history(2 * (COUNT - len(poisoned)) + 2 * ATTEMPTS * len(poisoned), timeout=60)
    states = await h.records()
    for iid in poisoned:
        s = states[iid]
        assert s.state == "active", (iid, s.state)
        assert [i.kind for i in s.incidents] == ["job-failed"], s.incidents
        assert "poison" in s.incidents[0].message
        assert sorted(attempts[iid]) == list(range(1, ATTEMPTS + 1)), attempts[iid]
    healthy = [iid for iid in h.ids if iid not in poisoned]
    assert all(states[i].state == "completed" for i in healthy)
    assert all(runs[i] == 1 for i in healthy)
    info = await h.js.consumer_info(layout.STREAM_JOBS, layout.job_consumer("default", "check"))
    assert info.num_pending == 0 and info.num_ack_pending == 0
    info = await h.js.consumer_info(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)
    assert info.num_pending == 0 and info.num_ack_pending == 0
