"""The console's HTTP API without a browser: authentication, roles, tenant scoping, filters,
paging, bad input and the event stream."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from typing import Any

import aiohttp
import pytest
from console_kit import Stack, approval, operator_token, viewer_token
from natsflow_console.auth import AuthError, parse_users


def call(
    stack: Stack,
    method: str,
    path: str,
    token: str | None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async def go() -> tuple[int, Any]:
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        payload: dict[str, Any] = {"json": body}
        if isinstance(body, bytes):
            sent["Content-Type"] = "application/json"
            payload = {"data": io.BytesIO(body)}
        async with aiohttp.ClientSession() as session:
            async with session.request(
                method, stack.url + path, headers=sent, allow_redirects=False, **payload
            ) as response:
                text = await response.text()
                try:
                    return response.status, json.loads(text)
                except json.JSONDecodeError:
                    return response.status, text

    return stack.run(go())


@pytest.fixture
def review(stack: Stack, tenants: dict[str, str]) -> tuple[str, list[str]]:
    """A fresh process in tenant a with three instances waiting at their user task."""
    api = stack.api(tenants["alice"])
    process = f"http-{uuid.uuid4().hex[:8]}"
    stack.run(api.deploy(approval(process), name="approval.bpmn"))
    ids = [
        stack.run(api.start(process, {"n": n}, business_key=f"bk-{process}-{n}", wait=True)).instance
        for n in range(3)
    ]
    return process, ids


def test_requests_without_a_known_token_are_refused(stack: Stack) -> None:
    assert call(stack, "GET", "/api/instances", None)[0] == 401
    status, body = call(stack, "GET", "/api/instances", "not-a-known-token-at-all")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert call(stack, "GET", "/api/instances", "x" * 5000)[0] == 401
    status, _ = call(stack, "GET", "/", None)
    assert status == 302  # to the login page
    assert call(stack, "GET", "/login", None)[0] == 200
    assert call(stack, "GET", "/static/app.js", None)[0] == 200


def test_me_names_the_user_tenant_and_role(stack: Stack, tenants: dict[str, str]) -> None:
    status, me = call(stack, "GET", "/api/me", viewer_token(tenants["alice"]))
    assert status == 200
    assert me == {"name": "alice-viewer", "tenant": tenants["alice"], "role": "viewer", "groups": []}


def test_login_sets_a_session_cookie_only_for_a_known_token(stack: Stack, tenants: dict[str, str]) -> None:
    async def go(token: str) -> tuple[str, int]:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.post(
                stack.url + "/login", data={"token": token}, allow_redirects=False
            ) as response:
                location = response.headers["Location"]
            async with session.get(stack.url + "/api/me") as me:
                return location, me.status

    assert stack.run(go(operator_token(tenants["alice"]))) == ("/", 200)
    assert stack.run(go("wrong-token-wrong-token")) == ("/login?failed=1", 401)


def test_the_viewer_role_reads_but_cannot_change(
    stack: Stack, tenants: dict[str, str], review: tuple[str, list[str]]
) -> None:
    _, ids = review
    token = viewer_token(tenants["alice"])
    assert call(stack, "GET", f"/api/instances/{ids[0]}", token)[0] == 200
    for path, body in (
        (f"/api/instances/{ids[0]}/cancel", {}),
        (f"/api/instances/{ids[0]}/variables", {"variables": {"a": 1}}),
        ("/api/deploy", {"source": approval("nope")}),
    ):
        status, reply = call(stack, "POST", path, token, body)
        assert status == 403 and reply["error"]["code"] == "forbidden", path
    assert stack.run(stack.api(tenants["alice"]).instance(ids[0])).state == "active"


def test_filters_and_paging(stack: Stack, tenants: dict[str, str], review: tuple[str, list[str]]) -> None:
    process, ids = review
    token = operator_token(tenants["alice"])
    status, page = call(stack, "GET", f"/api/instances?process={process}&limit=2", token)
    assert status == 200
    assert [i["id"] for i in page["instances"]] == ids[:2]
    status, rest = call(
        stack, "GET", f"/api/instances?process={process}&limit=2&cursor={page['cursor']}", token
    )
    assert [i["id"] for i in rest["instances"]] == ids[2:]

    def ids_for(query: str) -> list[str]:
        status, reply = call(stack, "GET", f"/api/instances?process={process}&{query}", token)
        assert status == 200, reply
        return [i["id"] for i in reply["instances"]]

    assert ids_for(f"business_key=bk-{process}-1") == [ids[1]]
    assert ids_for("version=1&state=active") == ids
    assert ids_for("version=2") == []
    assert ids_for("state=completed") == []
    assert ids_for("incidents=yes") == []
    assert ids_for("incidents=no") == ids
    assert ids_for("started_after=2000-01-01T00:00:00Z&started_before=2999-01-01T00:00:00Z") == ids
    assert ids_for("started_after=2999-01-01T00:00:00Z") == []


@pytest.mark.parametrize(
    "query",
    [
        "state=sleeping",
        "version=x",
        "incidents=maybe",
        "started_after=yesterday",
        "limit=0",
        "limit=9999",
        "process=" + "p" * 300,
    ],
)
def test_bad_filters_are_answered_with_a_typed_error(
    stack: Stack, tenants: dict[str, str], query: str
) -> None:
    status, reply = call(stack, "GET", f"/api/instances?{query}", operator_token(tenants["alice"]))
    assert status == 400 and reply["error"]["code"] == "invalid", reply


def test_bad_bodies_are_answered_with_a_typed_error(
    stack: Stack, tenants: dict[str, str], review: tuple[str, list[str]]
) -> None:
    _, ids = review
    token = operator_token(tenants["alice"])
    path = f"/api/instances/{ids[0]}/variables"
    for body in ([], {"variables": [1]}, {"variables": {"a": 1}, "scope": "root"}, {}):
        status, reply = call(stack, "POST", path, token, body)
        assert status == 400 and reply["error"]["code"] == "invalid", body
    status, reply = call(stack, "POST", path, token, {"variables": {"a": 1}, "scope": 999})
    assert status == 404
    status, reply = call(stack, "POST", "/api/deploy", token, {"source": "<not-bpmn/>", "name": "x.bpmn"})
    assert status == 422 and reply["error"]["code"] == "invalid"
    assert call(stack, "POST", "/api/deploy", token, b'{"source": "%s"}' % (b"x" * 3 * 1024 * 1024))[0] == 413


def test_deploy_reports_validation_errors_at_their_elements(stack: Stack, tenants: dict[str, str]) -> None:
    broken = approval(f"broken-{uuid.uuid4().hex[:8]}").replace('targetRef="gw" />', 'targetRef="nowhere" />')
    status, reply = call(stack, "POST", "/api/deploy", operator_token(tenants["alice"]), {"source": broken})
    assert status == 422
    assert any(d["element_id"] == "f2" for d in reply["error"]["details"]), reply


def test_set_variables_and_cancel(
    stack: Stack, tenants: dict[str, str], review: tuple[str, list[str]]
) -> None:
    _, ids = review
    token = operator_token(tenants["alice"])
    api = stack.api(tenants["alice"])
    status, _ = call(stack, "POST", f"/api/instances/{ids[0]}/variables", token, {"variables": {"level": 7}})
    assert status == 200
    view = stack.run(stack.until(lambda: _with(api, ids[0], "level"), "the variable is set"))
    assert view.variables["level"] == 7
    status, detail = call(stack, "GET", f"/api/instances/{ids[0]}", token)
    assert detail["scopes"][0]["ei"] == 1 and detail["scopes"][0]["variables"] == {"n": 0, "level": 7}

    assert call(stack, "POST", f"/api/instances/{ids[1]}/cancel", token, {"reason": "test"})[0] == 200
    view = stack.run(stack.until(lambda: _ended(api, ids[1]), "the instance is cancelled"))
    assert view.state == "cancelled"
    status, reply = call(stack, "POST", f"/api/instances/{ids[1]}/cancel", token, {})
    assert status == 409 and reply["error"]["code"] == "conflict"


async def _with(api: Any, instance: str, name: str) -> Any:
    view = await api.instance(instance)
    return view if name in view.variables else None


async def _ended(api: Any, instance: str) -> Any:
    view = await api.instance(instance)
    return view if view.state != "active" else None


def test_every_route_is_scoped_to_the_users_tenant(
    stack: Stack, tenants: dict[str, str], review: tuple[str, list[str]]
) -> None:
    process, ids = review
    b = operator_token(tenants["bob"])
    assert call(stack, "GET", "/api/instances", b)[1]["instances"] == []
    assert call(stack, "GET", f"/api/instances?process={process}", b)[1]["instances"] == []
    assert call(stack, "GET", "/api/processes", b)[1]["processes"] == []
    assert call(stack, "GET", "/api/tasks", b)[1]["tasks"] == []
    assert call(stack, "GET", "/api/incidents", b)[1]["incidents"] == []
    for method, path, body in (
        ("GET", f"/api/instances/{ids[0]}", None),
        ("GET", f"/api/instances/{ids[0]}/history", None),
        ("GET", f"/api/instances/{ids[0]}/live", None),
        ("GET", f"/api/processes/{process}", None),
        ("GET", f"/api/processes/{process}/heatmap?version=1", None),
        ("POST", f"/api/instances/{ids[0]}/cancel", {}),
        ("POST", f"/api/instances/{ids[0]}/variables", {"variables": {"x": 1}}),
        ("POST", f"/api/tasks/{ids[0]}.3/complete", {"variables": {}}),
        ("POST", f"/api/tasks/{ids[0]}.3/claim", {}),
    ):
        status, reply = call(stack, method, path, b, body)
        assert status in (404, 200), (path, status)
        if status == 200:  # the heatmap of an unknown process in b is empty
            assert reply["instances"] == 0, path
    # nothing changed in a
    api = stack.api(tenants["alice"])
    view = stack.run(api.instance(ids[0]))
    assert view.state == "active" and "x" not in view.variables
    assert all(t.assignee is None for t in stack.run(api.tasks(ids[0])))


def test_the_event_stream_sends_state_and_history_live(
    stack: Stack, tenants: dict[str, str], review: tuple[str, list[str]]
) -> None:
    _, ids = review
    api = stack.api(tenants["alice"])

    async def go() -> list[tuple[str, Any]]:
        seen: list[tuple[str, Any]] = []
        headers = {"Authorization": f"Bearer {operator_token(tenants['alice'])}"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{stack.url}/api/instances/{ids[2]}/live", headers=headers) as response:
                assert response.headers["Content-Type"] == "text/event-stream"
                name = ""
                completed = False
                async with asyncio.timeout(20):
                    async for raw in response.content:
                        line = raw.decode().rstrip("\n")
                        if line.startswith("event: "):
                            name = line[7:]
                        elif line.startswith("data: "):
                            seen.append((name, json.loads(line[6:])))
                            if name == "state" and not completed:
                                tasks = await api.tasks(ids[2])
                                if tasks:
                                    await api.complete_task(tasks[0].id, {"x": 1})
                                    completed = True
                            if name == "state" and seen[-1][1]["state"] == "completed":
                                return seen
        return seen

    seen = stack.run(go(), timeout=30)
    states = [data["state"] for name, data in seen if name == "state"]
    steps = [data["step"] for name, data in seen if name == "history"]
    assert states[0] == "active" and states[-1] == "completed"
    assert steps[:1] == [1]


def test_users_documents_are_validated() -> None:
    good = "users: [{name: a, tenant: shop, token: 0123456789abcdef}]"
    assert len(parse_users(good)) == 1
    for bad, field in (
        ("users: [{name: a, tenant: Shop!, token: 0123456789abcdef}]", "users[0].tenant"),
        ("users: [{name: a, tenant: shop, token: short}]", "users[0].token"),
        ("users: [{name: a, tenant: shop, role: admin, token: 0123456789abcdef}]", "users[0].role"),
        ("users: [{name: 'a b', tenant: shop}]", "users[0].name"),
        ("users: [{name: a, tenant: shop, token_sha256: xyz}]", "users[0].token_sha256"),
        ("nobody: here", "users"),
        ("users: [{name: a, tenant: s}, {name: a, tenant: t}]", "same name"),
    ):
        with pytest.raises(AuthError, match=field.replace("[", r"\[").replace("]", r"\]")):
            parse_users(bad)


def test_a_trusted_proxy_header_names_the_user(nats_url: str, tenants: dict[str, str]) -> None:
    from natsflow_console import Console, ConsoleSettings

    stack = Stack(nats_url, tenants)
    stack.thread.start()
    try:

        async def go() -> list[int]:
            import nats

            nc = await nats.connect(nats_url)
            users = parse_users(f"users: [{{name: carol, tenant: {tenants['alice']}, role: viewer}}]")
            settings = ConsoleSettings(port=0, proxy_user_header="X-Forwarded-User")
            async with Console(nc, users, settings) as console, aiohttp.ClientSession() as session:
                statuses = []
                for name in ("carol", "mallory", ""):
                    async with session.get(
                        console.url + "/api/me", headers={"X-Forwarded-User": name} if name else {}
                    ) as response:
                        statuses.append(response.status)
            await nc.close()
            return statuses

        assert stack.run(go()) == [200, 401, 401]
    finally:
        stack.loop.call_soon_threadsafe(stack.loop.stop)
        stack.thread.join(10)
        stack.loop.close()


def test_forms_deploy_and_read_within_the_users_tenant(stack: Stack, tenants: dict[str, str]) -> None:
    alice, bob = operator_token(tenants["alice"]), operator_token(tenants["bob"])
    form_id = f"http-form-{uuid.uuid4().hex[:8]}"
    form = {"id": form_id, "type": "default", "components": [{"id": "c", "key": "x", "type": "number"}]}
    status, body = call(stack, "POST", "/api/deploy", alice, {"source": json.dumps(form), "name": "a.form"})
    assert status == 200 and body == {"deployed": [], "forms": [{"form_id": form_id, "version": 1, "created": True}]}
    status, body = call(stack, "GET", f"/api/forms/{form_id}", alice)
    assert status == 200 and body == {"form_id": form_id, "version": 1, "schema": form}
    assert call(stack, "GET", f"/api/forms/{form_id}", bob)[0] == 404
    status, body = call(stack, "POST", "/api/deploy", alice, {"source": '{"id": "f"}', "name": "bad.form"})
    assert status == 400 and "components must be a list" in body["error"]["message"]
    assert call(stack, "POST", "/api/deploy", viewer_token(tenants["alice"]), {"source": json.dumps(form)})[0] == 403
