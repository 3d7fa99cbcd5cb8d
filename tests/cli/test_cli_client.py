"""The client commands against a running engine and API: text output and ``-o json``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from cli_kit import Stack
from natsflow_engine import catalog, layout
from natsflow_engine.runtime import records as r

REVIEW = (Path(__file__).parents[1] / "models" / "review.bpmn").read_text()
ESP_INCIDENT = (Path(__file__).parents[1] / "models" / "esp-incident.bpmn").read_text()


def doc(text: str) -> object:
    """The output must be exactly one JSON document."""
    return json.loads(text)


async def until_state(stack: Stack, iid: str, state: str) -> None:
    async with asyncio.timeout(10):
        while (await stack.api.instance(iid)).state != state:
            await asyncio.sleep(0.02)


async def test_workflow_lifecycle_through_the_cli(stack: Stack, tmp_path: Path) -> None:
    model = tmp_path / "review.bpmn"
    model.write_text(REVIEW)
    result = await stack.invoke("deploy", str(model))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("review version 1")
    deployed = doc((await stack.invoke("deploy", str(model), "-o", "json")).stdout)
    assert deployed == [{"file": str(model), "process_id": "review", "version": 1, "created": False}]
    assert "review" in (await stack.invoke("workflows")).stdout
    assert doc((await stack.invoke("workflows", "-o", "json")).stdout)[0]["version"] == 1  # type: ignore[index]

    started = doc(
        (
            await stack.invoke(
                "start", "review", "--vars", '{"x": 1}', "--key", "k1", "--business-key", "B1", "-o", "json"
            )
        ).stdout
    )
    assert isinstance(started, dict) and started["duplicate"] is False
    iid = started["instance"]
    again = await stack.invoke("start", "review", "--vars", "{}", "--key", "k1")
    assert "duplicate" in again.stdout
    async with asyncio.timeout(10):  # the index entry follows the record within the step
        while not (await stack.api.instances(process_id="review")).instances:
            await asyncio.sleep(0.02)
    listed = doc((await stack.invoke("instances", "--process", "review", "-o", "json")).stdout)
    assert [i["id"] for i in listed] == [iid]  # type: ignore[union-attr, index]
    assert iid in (await stack.invoke("instances", "--state", "active")).stdout
    assert iid in (await stack.invoke("instances", "--version", "1", "--no-incidents")).stdout
    assert iid not in (await stack.invoke("instances", "--incidents")).stdout
    assert iid not in (await stack.invoke("instances", "--started-after", "2999-01-01T00:00:00Z")).stdout

    async with asyncio.timeout(10):
        while not await stack.api.tasks(iid):
            await asyncio.sleep(0.02)
    tasks = doc((await stack.invoke("tasks", iid, "-o", "json")).stdout)
    assert isinstance(tasks, list) and len(tasks) == 1
    task = tasks[0]["id"]
    assert "Check it" in (await stack.invoke("tasks")).stdout
    claimed = doc((await stack.invoke("claim-task", task, "ann", "-o", "json")).stdout)
    assert claimed["assignee"] == "ann"  # type: ignore[index]
    refused = await stack.invoke("claim-task", task, "bob")
    assert refused.exit_code == 1 and "claimed by 'ann'" in str(refused.exception)

    shown = doc((await stack.invoke("show", iid, "-o", "json")).stdout)
    assert isinstance(shown, dict)
    assert (shown["state"], shown["variables"], shown["business_key"]) == ("active", {"x": 1}, "B1")
    assert shown["active_elements"][0]["element_id"] == "check"
    assert shown["history"][0]["events"][0]["type"] == "instance-started"
    text = (await stack.invoke("show", iid)).stdout
    assert "state      active" in text and "x = 1" in text and "instance-started" in text

    done = await stack.invoke("complete-task", task, "--vars", "{}")  # x stays 1 ... then the gateway works
    assert done.exit_code == 0 and "completed" in done.stdout
    await until_state(stack, iid, "completed")
    watched = await stack.invoke("watch", iid)
    assert watched.exit_code == 0 and watched.stdout.rstrip().endswith(f"instance {iid} completed")
    assert "user-task-completed check" in watched.stdout


async def test_incidents_and_resolve_through_the_cli(stack: Stack, tmp_path: Path) -> None:
    await stack.api.deploy(REVIEW)
    iid = (await stack.api.start("review", wait=True)).instance
    async with asyncio.timeout(10):
        while not (tasks := await stack.api.tasks(iid)):
            await asyncio.sleep(0.02)
    await stack.api.complete_task(tasks[0].id)  # no x -> incident at the gateway
    async with asyncio.timeout(10):
        while not await stack.api.incidents(iid):
            await asyncio.sleep(0.02)
    incidents = doc((await stack.invoke("incidents", "-o", "json")).stdout)
    assert isinstance(incidents, list) and incidents[0]["element_id"] == "gw"
    assert "expression" in (await stack.invoke("incidents", "--instance", iid)).stdout
    vars_file = tmp_path / "fix.json"
    vars_file.write_text('{"x": 99}')
    resolved = await stack.invoke("resolve", incidents[0]["id"], "--vars", f"@{vars_file}")
    assert resolved.exit_code == 0, resolved.output
    await until_state(stack, iid, "completed")
    assert doc((await stack.invoke("incidents", "-o", "json")).stdout) == []


async def test_cancel_instances_watch_and_triggers(stack: Stack) -> None:
    await stack.api.deploy(REVIEW)
    iid = (await stack.api.start("review", wait=True)).instance
    live = asyncio.create_task(stack.invoke("instances", "--watch", "--duration", "1.5"))
    await asyncio.sleep(0.5)
    await stack.api.cancel(iid)  # not through the CLI: CliRunner swaps sys.stdout, one at a time
    await until_state(stack, iid, "cancelled")
    drawn = (await live).stdout
    assert "active" in drawn and drawn.rstrip().splitlines()[-1].split()[3] == "cancelled"
    other = (await stack.api.start("review", wait=True)).instance
    assert (await stack.invoke("cancel", other, "--reason", "test")).exit_code == 0
    await until_state(stack, other, "cancelled")
    refused = await stack.invoke("instances", "--watch", "-o", "json")
    assert refused.exit_code == 2

    kv = await stack.nc.jetstream().key_value(layout.BUCKET_TRIGGERS)
    record = catalog.TriggerRecord(
        tenant=stack.tenant,
        name="in",
        subject=f"x.{stack.tenant}",
        stream="",
        consumer="c",
        process_id="review",
        suspended=True,
    )
    await kv.put(layout.trigger_key(stack.tenant, "in"), catalog.encode_record(record))
    triggers = doc((await stack.invoke("triggers", "-o", "json")).stdout)
    assert isinstance(triggers, list) and triggers[0]["name"] == "in" and triggers[0]["suspended"] is True
    assert "suspended" in (await stack.invoke("triggers")).stdout


async def test_bad_input_gives_one_clear_line_and_a_non_zero_exit(stack: Stack) -> None:
    bad = await stack.invoke("start", "review", "--vars", "[1]")
    assert bad.exit_code == 1 and "--vars must be a JSON object" in str(bad.exception)
    bad_ttl = await stack.invoke("publish-message", "m", "--ttl", "soon")
    assert "invalid duration" in str(bad_ttl.exception)
    env = {**os.environ, "NATS_URL": stack.url, "NATSFLOW_TENANT": stack.tenant}
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from natsflow.cli import main; main()", "show", "nothere"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    expected = "error: instance 'nothere' not found in tenant " + repr(stack.tenant)
    assert proc.stderr.strip().splitlines() == [expected], proc.stderr


async def test_resolving_an_incident_of_an_ended_instance_fails(stack: Stack) -> None:
    await stack.api.deploy(ESP_INCIDENT)
    iid = (await stack.api.start("esp-incident", {"orderId": "o-1"}, wait=True)).instance
    async with asyncio.timeout(10):
        while not (tasks := await stack.api.tasks(iid)):
            await asyncio.sleep(0.02)
    [incident] = await stack.api.incidents(iid)  # the event sub-process start cannot be armed
    await stack.api.complete_task(tasks[0].id)
    await until_state(stack, iid, "completed")
    assert await stack.api.incidents(iid) == []  # closed with the instance
    resolved = await stack.invoke("resolve", incident.id)
    assert resolved.exit_code == 1 and "is not open" in str(resolved.exception), resolved.output
    unknown = await stack.invoke("resolve", "nothere.2.1")
    assert unknown.exit_code == 1 and "not found" in str(unknown.exception), unknown.output


async def test_incidents_of_instances_ended_under_an_older_version_are_not_listed(stack: Stack) -> None:
    """Records written before incidents closed with their instance still carry them: listings
    (API and CLI) never show an ended instance's incidents, and resolving one is refused."""
    await stack.api.deploy(ESP_INCIDENT)
    iid = (await stack.api.start("esp-incident", {"orderId": "o-2"}, wait=True)).instance
    async with asyncio.timeout(10):
        while not (tasks := await stack.api.tasks(iid)):
            await asyncio.sleep(0.02)
    [incident] = await stack.api.incidents(iid)
    await stack.api.complete_task(tasks[0].id)
    await until_state(stack, iid, "completed")
    # put the incident back into the ended record, as the version before wrote it
    kv = await stack.nc.jetstream().key_value(layout.BUCKET_INSTANCES)
    key = layout.instance_key(stack.tenant, iid)
    state = r.decode_state((await kv.get(key)).value or b"")
    assert state.state == "completed" and state.incidents == []
    state.incidents = [
        r.Incident(id=incident.id, ei=incident.ei, element_id=incident.element_id, kind=incident.kind,
                   message=incident.message, at=incident.at)
    ]
    await kv.put(key, r.encode(state))

    assert await stack.api.incidents(iid) == []
    assert [i for i in await stack.api.incidents() if i.instance == iid] == []
    assert doc((await stack.invoke("incidents", "-o", "json")).stdout) == []
    assert incident.id not in (await stack.invoke("incidents", "--instance", iid)).stdout
    [summary] = [s for s in doc((await stack.invoke("instances", "-o", "json")).stdout) if s["id"] == iid]
    assert summary["incidents"] == 0
    resolved = await stack.invoke("resolve", incident.id)
    assert resolved.exit_code == 1, resolved.output
