"""Bad input gets a typed error, never ``internal``; NATS permission errors are reported at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from api_kit import REVIEW, Api, bounded_stop
from natsflow_engine.api.client import ApiClient
from natsflow_engine.api.server import ApiServer, ApiSettings
from natsflow_engine.errors import InvalidInputError, PermissionViolationError
from natsflow_engine.server import EmbeddedNatsServer

ODD_IDS = {"accent": "é", "nul": "\x00", "space": "a b", "long": "x" * 5000}

ID_FIELDS = [
    ("instance-get", "instance", {}),
    ("instance-cancel", "instance", {}),
    ("instance-history", "instance", {}),
    ("instance-list", "cursor", {}),
    ("task-list", "instance", {}),
    ("task-complete", "task", {}),
    ("task-claim", "task", {"assignee": "ann"}),
    ("incident-list", "instance", {}),
    ("incident-resolve", "incident", {}),
]


async def error_of(api: Api, endpoint: str, body: object) -> dict[str, str]:
    msg = await api.nc.request(f"nf.api.{api.tenant}.{endpoint}", json.dumps(body).encode(), timeout=5)
    reply = json.loads(msg.data)
    assert "error" in reply, reply
    error: dict[str, str] = reply["error"]
    return error


@pytest.mark.parametrize("odd", list(ODD_IDS.values()), ids=list(ODD_IDS))
async def test_odd_ids_are_invalid_input(api: Api, odd: str) -> None:
    await api.client.deploy(REVIEW)
    for endpoint, field, rest in ID_FIELDS:
        error = await error_of(api, endpoint, {field: odd, **rest})
        assert error["code"] == "invalid.name", (endpoint, error)
        assert error["message"].startswith(f"invalid {field} "), (endpoint, error)  # names the field and its rule
    assert (await api.client.workflows())[0].process_id == "review"


@pytest.mark.parametrize("ttl", [1e12, 1e300, -1.0])
async def test_message_ttl_out_of_range_is_invalid(api: Api, ttl: float) -> None:
    error = await error_of(api, "message-publish", {"name": "paid", "ttl": ttl})
    assert error["code"] == "invalid" and "$.ttl" in error["message"], error
    with pytest.raises(InvalidInputError, match=r"\$\.ttl"):
        await api.client.publish_message("paid", ttl=ttl)


async def test_deeply_nested_request_is_invalid(api: Api) -> None:
    depth = 20_000  # well past the decoder's recursion limit, within the 64 KiB request limit
    body = b'{"process_id": "review", "variables": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
    msg = await api.nc.request(f"nf.api.{api.tenant}.instance-start", body, timeout=5)
    error = json.loads(msg.data)["error"]
    assert error["code"] == "invalid" and "nested too deeply" in error["message"], error


# --- NATS permissions -------------------------------------------------------------------------

CONFIG = """
authorization {
  users = [
    {user: admin, password: admin}
    {user: reader, password: reader, permissions: {
      publish: {allow: ["nf.api.shop.workflow-list", "$JS.API.>"]}
      subscribe: {allow: ["_INBOX.>"]}
    }}
    {user: deaf, password: deaf, permissions: {
      publish: {allow: ["nf.api.>"]}
      subscribe: {deny: ["_INBOX.>"]}
    }}
  ]
}
"""


@pytest.fixture(scope="module")
def restricted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsServer]:
    config: Path = tmp_path_factory.mktemp("nats-perm") / "server.conf"
    config.write_text(CONFIG)
    with EmbeddedNatsServer(extra_args=["-c", str(config)]) as server:
        yield server


@pytest.fixture
async def api_server(restricted_server: EmbeddedNatsServer) -> AsyncIterator[None]:
    admin = await nats.connect(restricted_server.url, user="admin", password="admin")
    server = await ApiServer(admin, ApiSettings()).start()
    try:
        yield
    finally:
        await bounded_stop(server.stop(), "API server")
        await admin.close()


async def test_a_refused_publish_is_a_permission_error_at_once(
    restricted_server: EmbeddedNatsServer, api_server: None
) -> None:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(restricted_server.url, user="reader", password="reader", error_cb=on_error)
    try:
        client = ApiClient(nc, "shop", timeout=60.0)
        assert await client.workflows() == []  # allowed
        async with asyncio.timeout(20):  # far below the client's 60 s timeout
            with pytest.raises(PermissionViolationError, match=r"(?i)permissions violation for publish") as caught:
                await client.deploy(REVIEW)
        assert caught.value.subject == "nf.api.shop.deploy"
        assert await client.workflows() == []  # the connection still serves what is allowed
        assert any("permissions violation" in str(exc).lower() for exc in errors)  # the app's callback still runs
    finally:
        await nc.close()


async def test_a_refused_reply_inbox_is_a_permission_error_at_once(
    restricted_server: EmbeddedNatsServer, api_server: None
) -> None:
    nc = await nats.connect(restricted_server.url, user="deaf", password="deaf")
    try:
        client = ApiClient(nc, "shop", timeout=60.0)
        async with asyncio.timeout(20):
            with pytest.raises(PermissionViolationError, match=r"(?i)permissions violation for subscription"):
                await client.workflows()
    finally:
        await nc.close()
