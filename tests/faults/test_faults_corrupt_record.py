"""An instance record made corrupt by hand: that instance gets an incident, visible in its
history, and the engine keeps serving the others.

Expected engine behaviour (issue #7), when the record of ``<tenant>.<instance>`` does not
decode while a command for it is applied:

* the engine publishes a history record on ``nf.hist.<tenant>.<instance>`` (message id
  deterministic per command, e.g. ``<instance>.corrupt.<command id>``, so a redelivery adds
  nothing) with one event ``{"type": "incident-raised", "data": {"kind": "corrupt-record",
  "command": <command id>, "message": <decode error>}}``; ``process_id``/``step``/``state``
  may be placeholders (the record cannot be read);
* the command is terminated after that (it cannot be applied; the history keeps its id);
* the record itself is left as it is, for an operator to inspect or repair;
* the engine keeps running and applies every other instance's commands.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from natsflow_engine import layout
from natsflow_engine.runtime.setup import LayoutSettings
from natsflow_engine.server import EmbeddedNatsServer

from bench.common import TENANT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

GARBAGE = b"\x00\xff{not json at all"
OTHERS = 100


async def test_corrupt_record_gets_an_incident_and_engine_serves_others(
    server: EmbeddedNatsServer, harness_factory
):
    h = await harness_factory(server.url, LayoutSettings(command_ack_wait=2.0))
    engine = await h.start_engine("engine")
    await h.launch(1)  # no worker yet: the instance waits at its service task
    victim = h.ids[0]
    await h.wait_history(1, timeout=20)
    kv = h.buckets[layout.BUCKET_INSTANCES]
    key = layout.instance_key(TENANT, victim)
    job = (await h.records())[victim].eis[3].job
    await kv.put(key, GARBAGE)

    await h.start_worker()  # completes the victim's job: the engine meets the corrupt record
    await h.launch(OTHERS)
    incident = None
    for _ in range(150):
        for msg in await h.read_stream(layout.history_subject(TENANT, victim)):
            record = json.loads(msg.data)
            for event in record.get("events", []):
                if (
                    event.get("type") == "incident-raised"
                    and (event.get("data") or {}).get("kind") == "corrupt-record"
                ):
                    incident = event
        if incident is not None:
            break
        await asyncio.sleep(0.2)
    assert incident is not None, "no incident-raised event of kind corrupt-record in the instance's history"
    assert incident["data"].get("command") == f"{job}.done", incident

    others = h.ids[1:]
    await h.wait_history(1 + 1 + 2 * OTHERS, timeout=60)
    states = {i: s for i, s in (await h.records(lenient=True)).items() if i in others}
    assert all(s.state == "completed" for s in states.values()) and len(states) == OTHERS
    assert (await kv.get(key)).value == GARBAGE, "the corrupt record was overwritten"
    assert engine.alive
    info = await h.js.consumer_info(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)
    assert info.num_pending == 0 and info.num_ack_pending == 0, "a command is still pending"
