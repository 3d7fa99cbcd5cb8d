"""Commands the engine cannot apply go to the dead-letter stream with the reason, and raise an
incident on their instance; they are never redelivered without end nor dropped silently."""

from __future__ import annotations

import json

from modelkit import chain, model, user_task
from nats.js.api import ConsumerConfig, DeliverPolicy
from natsflow_engine import layout
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.engine import Engine, EngineSettings
from natsflow_engine.runtime.setup import LayoutSettings
from natsflow_engine.store import publish_command

from natsflow.testing import ProcessTestEngine

MAX_DELIVER = 3


async def _strict_engine(kit: ProcessTestEngine) -> None:
    """The kit's engine replaced by one that gives up on a command after a few quick tries."""
    await kit.engine.stop(timeout=2.0)
    kit.engine = await Engine(
        kit.nc,
        EngineSettings(redelivery_delay=0.05),
        layout_settings=LayoutSettings(command_max_deliver=MAX_DELIVER),
        clock=kit.clock.now,
        timers=kit.timers,
    ).start()


async def _dead_letters(kit: ProcessTestEngine, count: int) -> list[tuple[str, dict[str, str], bytes]]:
    """The first ``count`` dead letters (waits for them)."""
    sub = await kit.js.pull_subscribe(
        f"{layout.DEAD_LETTER_PREFIX}.>",
        stream=layout.STREAM_DEAD_LETTERS,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    found = []
    while len(found) < count:
        for msg in await sub.fetch(count - len(found), timeout=20):
            found.append((msg.subject, dict(msg.headers or {}), msg.data))
    await sub.unsubscribe()
    return found


async def test_a_command_that_fails_every_time_is_dead_lettered_with_an_incident(kit: ProcessTestEngine) -> None:
    await _strict_engine(kit)
    body = '<bpmn:startEvent id="s" />' + user_task("ut") + '<bpmn:endEvent id="e" />' + chain("s", "ut", "e")
    await kit.deploy(model("fragile", body))
    iid = await kit.start_instance("fragile")
    await kit.wait_until_idle()
    [task] = await kit.user_tasks(iid)
    # the deployed source is damaged: no step of the instance can load its process any more
    key = layout.workflow_key(kit.tenant, "fragile", 1)
    record = json.loads((await kit.workflows_kv.get(key)).value or b"")
    record["source"] = "<bpmn:definitions"
    await kit.workflows_kv.put(key, json.dumps(record).encode())
    await kit.restart_engine()
    await _strict_engine(kit)

    await kit.complete_user_task(task.id)
    [(subject, headers, data)] = await _dead_letters(kit, 1)
    assert subject == layout.command_dead_letter_subject(kit.tenant, iid)
    assert headers["Natsflow-Instance"] == iid
    assert f"failed on each of {MAX_DELIVER} deliveries" in headers["Natsflow-Dead-Letter-Reason"]
    assert isinstance(r.command_decoder.decode(data), r.UserTaskCompleted)
    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert [i.kind for i in snap.incidents] == ["dead-letter"]
    assert "UserTaskCompleted" in snap.incidents[0].message
    info = await kit.js.consumer_info(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)
    assert info.num_pending == 0 and info.num_ack_pending == 0


async def test_commands_for_unknown_instances_and_undecodable_ones_are_dead_lettered(kit: ProcessTestEngine) -> None:
    await publish_command(kit.js, r.Cancel(id="cancel.ghost", tenant=kit.tenant, instance="ghost"))
    await kit.js.publish(layout.command_subject(kit.tenant, "garbled"), b"{not json")
    letters = await _dead_letters(kit, 2)
    reasons = {headers["Natsflow-Instance"]: headers["Natsflow-Dead-Letter-Reason"] for _, headers, _ in letters}
    assert reasons["ghost"] == "instance ghost does not exist"
    assert reasons["garbled"].startswith("the command does not decode")
    await kit.wait_until_idle()
