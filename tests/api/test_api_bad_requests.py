"""Malformed requests get typed errors; the server keeps serving. Auth hook. Real-time events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from datetime import datetime

import msgspec
import pytest
from api_kit import REVIEW, Api
from nats.aio.client import Client
from natsflow_engine.api.client import ApiClient
from natsflow_engine.api.server import ApiServer, ApiSettings


async def raw(nc: Client, subject: str, data: bytes) -> tuple[dict[str, object], Mapping[str, str]]:
    msg = await nc.request(subject, data, timeout=5)
    return json.loads(msg.data), msg.headers or {}


@pytest.mark.parametrize(
    ("endpoint", "body", "code", "fragment"),
    [
        ("instance-get", b"not json", "invalid", "JSON"),
        ("instance-get", b"[1, 2]", "invalid", "Expected `object`"),
        ("instance-get", b"{}", "invalid", "missing required field `instance`"),
        ("instance-get", b'{"instance": 5}', "invalid", "Expected `str`, got `int` - at `$.instance`"),
        ("instance-get", b'{"instance": "0000000000000000beef"}', "not_found", "not found"),
        ("instance-get", b'{"instance": "a.b"}', "invalid.name", "invalid instance"),
        ("instance-start", b'{"process_id": "review", "variables": []}', "invalid", "$.variables"),
        (
            "instance-start",
            b'{"process_id": "review", "variables": {"b": "' + b"x" * 70_000 + b'"}}',
            "too_large",
            "",
        ),
        ("instance-start", b'{"v": 9, "process_id": "review"}', "unsupported", "newer"),
        ("instance-list", b'{"limit": 0}', "invalid", "limit"),
        ("instance-list", b'{"state": "sleeping"}', "invalid", "state must be one of"),
        ("instance-list", b'{"cursor": "a>b"}', "invalid.name", "invalid cursor"),
        ("task-complete", b'{"task": "x.1", "variables": {}}', "not_found", "not open"),
        ("task-claim", b'{"task": "x.1"}', "invalid", "missing required field `assignee`"),
        ("incident-resolve", b'{"incident": ""}', "invalid.name", "invalid incident"),
        ("deploy", b'{"source": 3}', "invalid", "$.source"),
        ("message-publish", b'{"name": "m", "ttl": -1}', "invalid", "$.ttl"),
        ("workflow-list", b"", None, ""),
    ],
)
async def test_typed_errors(api: Api, endpoint: str, body: bytes, code: str | None, fragment: str) -> None:
    await api.client.deploy(REVIEW)
    reply, headers = await raw(api.nc, f"nf.api.{api.tenant}.{endpoint}", body)
    assert reply["v"] == 1
    if code is None:  # depends on the build (messaging) or succeeds: any well-formed envelope
        assert ("result" in reply) != ("error" in reply)
        return
    error = reply["error"]
    assert isinstance(error, dict) and error["code"] == code, reply
    assert fragment in error["message"]
    assert headers["Nats-Service-Error-Code"] == code
    assert (await api.client.workflows())[0].process_id == "review"  # still serving


async def test_tenant_comes_from_the_subject(api: Api) -> None:
    reply, _ = await raw(api.nc, "nf.api.Not_A_Tenant.workflow-list", b"{}")
    assert reply["error"]["code"] == "invalid"  # type: ignore[index]
    await api.client.deploy(REVIEW)
    other = ApiClient(api.nc, api.tenant + "-other")
    assert await other.workflows() == []  # a body cannot name another tenant
    reply, _ = await raw(
        api.nc, f"nf.api.{api.tenant}-other.workflow-list", b'{"tenant": "' + api.tenant.encode() + b'"}'
    )
    assert reply["result"] == {"workflows": []}


async def test_many_bad_requests_at_once_do_not_stop_the_server(api: Api) -> None:
    bodies = [b"", b"{", b"null", b'{"instance": null}', b"\xff\xfe", b'{"instance": "' + b"z" * 5000 + b'"}']
    subject = f"nf.api.{api.tenant}.instance-get"
    replies = await asyncio.gather(*(api.nc.request(subject, b, timeout=5) for b in bodies * 20))
    categories = {json.loads(m.data)["error"]["code"].split(".")[0] for m in replies}
    assert categories <= {"invalid", "not_found"}
    assert await api.client.workflows() == []


async def test_authorization_hook(nc: Client, unique: str) -> None:
    async def only_reads(tenant: str, endpoint: str, headers: Mapping[str, str]) -> bool:
        return endpoint.endswith("-list") or headers.get("Authorization") == "Bearer ok"

    async with ApiServer(nc, ApiSettings(authorize=only_reads, queue_group=f"auth-{unique}")):
        client = ApiClient(nc, unique + "-auth")
        reply, headers = await raw(nc, f"nf.api.{unique}-auth.instance-get", b'{"instance": "x"}')
        assert reply["error"]["code"] == "forbidden" and headers["Nats-Service-Error-Code"] == "forbidden"  # type: ignore[index]
        assert await client.workflows() == []
        msg = await nc.request(
            f"nf.api.{unique}-auth.instance-get",
            b'{"instance": "x"}',
            headers={"Authorization": "Bearer ok"},
            timeout=5,
        )
        assert json.loads(msg.data)["error"]["code"] == "not_found"


async def test_watch_delivers_each_step_within_100ms(api: Api) -> None:
    await api.client.deploy(REVIEW)
    started = await api.client.start("review", {"x": 20}, wait=True)
    seen: list[tuple[int, str, float]] = []

    async def watch() -> None:
        async for record in api.client.watch(started.instance):
            seen.append((record.step, record.state, time.time()))

    watcher = asyncio.create_task(watch())
    while not seen or not await api.client.tasks(started.instance):
        await asyncio.sleep(0.01)
    [task] = await api.client.tasks(started.instance)
    await api.client.complete_task(task.id)
    await asyncio.wait_for(watcher, 5)
    assert [s[:2] for s in seen] == [(1, "active"), (2, "completed")]
    history = await api.client.history(started.instance)
    written = datetime.fromisoformat(history.records[-1].at).timestamp()
    latency = seen[-1][2] - written
    assert latency < 0.1, latency
    print(f"\nwatch latency {latency * 1000:.1f} ms")


def test_reply_envelope_decodes_with_msgspec() -> None:
    from natsflow_engine.api import protocol as p

    reply = msgspec.json.decode(p.encode_error("conflict", "no"), type=p.Reply)
    assert reply.error is not None and reply.error.code == "conflict" and not len(reply.result)
