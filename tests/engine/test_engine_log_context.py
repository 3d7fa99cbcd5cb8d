"""Engine and worker log lines about an element carry tenant, instance and element as fields,
so the troubleshooting page's ``jq 'select(.instance == ...)'`` filters find them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from modelkit import chain, model, service
from natsflow_engine.observability import configure_logging
from natsflow_engine.runtime import records as r
from natsflow_engine.store import publish_command

from natsflow.testing import ProcessTestEngine
from natsflow.worker import Job

BODY = '<bpmn:startEvent id="s" />' + service("pay", "pay", retries=2) + '<bpmn:endEvent id="e" />'


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging("json", "DEBUG", stream=out)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(out: io.StringIO, iid: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    return [e for e in lines if e.get("instance") == iid and e["logger"].startswith("natsflow_engine")]


async def test_every_line_about_an_element_names_it(kit: ProcessTestEngine, json_log: io.StringIO) -> None:
    await kit.deploy(model("p", BODY + chain("s", "pay", "e")))
    iid = await kit.start_instance("p")

    @kit.task("pay")
    async def pay(job: Job) -> None:
        raise RuntimeError("card declined")

    await kit.advance_time(timedelta(seconds=1))  # the retry, then the incident
    snap = await kit.instance(iid)
    assert [i.element_id for i in snap.incidents] == ["pay"]
    # an answer for a job that is no longer active is logged and ignored
    ei = next(e.ei for e in snap.history if e.element_id == "pay" and e.type == "job-created")
    await publish_command(
        kit.js, r.JobCompleted(id="stale", tenant=kit.tenant, instance=iid, job=f"{iid}.{ei}.0", ei=ei or 0)
    )
    await kit.wait_until_idle()

    lines = _lines(json_log, iid)
    messages = [e["message"] for e in lines]
    assert any("failed (attempt 1, 1 retries left" in m for m in messages), messages  # worker
    assert any("no retries left" in m for m in messages), messages  # worker
    assert any(m.startswith("incident raised") for m in messages), messages  # engine
    assert any(f"job {iid}.{ei}.0 is not active" in m for m in messages), messages  # interpreter
    about_pay = [e for e in lines if "job" in e["message"] or "incident" in e["message"]]
    assert len(about_pay) >= 4
    assert all((e["tenant"], e["element"]) == (kit.tenant, "pay") for e in about_pay), about_pay
