"""HTTP routes: JSON under ``/api``, event streams, the login page and the built front-end.

Every ``/api`` route acts for ``request[USER_KEY].tenant`` through an :class:`ApiClient` bound
to that tenant; no route reads a tenant from the URL, the query or the body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from natsflow_engine.api.client import ApiClient
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime.forms import is_form
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from natsflow_console import health, live
from natsflow_console.auth import User, Users
from natsflow_console.errors import BadRequest, from_exception
from natsflow_console.keys import REGISTRY_KEY, SETTINGS_KEY, STREAMS_KEY, USER_KEY, nc_of
from natsflow_console.listing import list_instances, parse_filters
from natsflow_console.records import read_detail

__all__ = ["add_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HEATMAP_LIMIT = 5_000
MAX_NAME = 256
STREAMS = Gauge("natsflow_console_event_streams", "Event streams (SSE) open in this console process")


def user_of(request: web.Request) -> User:
    user: User = request[USER_KEY]
    return user


def api_of(request: web.Request) -> ApiClient:
    return ApiClient(nc_of(request), user_of(request).tenant)


def json_reply(document: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(document), status=status, content_type="application/json")


def _guarded(handler: Handler) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except NatsflowError as exc:
            return from_exception(exc)

    return run


async def json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise BadRequest("send a JSON object with Content-Type: application/json")
    try:
        document = msgspec.json.decode(await request.read())
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    return document


def _variables(body: dict[str, Any], required: bool = False) -> dict[str, Any]:
    variables = body.get("variables", None if required else {})
    if not isinstance(variables, dict):
        raise BadRequest("variables must be a JSON object")
    return variables


def _limit(query: dict[str, str], default: int, top: int) -> int:
    text = query.get("limit", str(default))
    if not text.isdigit() or not 1 <= int(text) <= top:
        raise BadRequest(f"limit must be a number from 1 to {top}")
    return int(text)


def _param(query: dict[str, str], name: str) -> str | None:
    value = query.get(name, "").strip()
    if len(value) > MAX_NAME:
        raise BadRequest(f"{name} is longer than {MAX_NAME} characters")
    return value or None


# --- who am I ---------------------------------------------------------------------------------


async def me(request: web.Request) -> web.StreamResponse:
    return json_reply(user_of(request).public())


# --- instances --------------------------------------------------------------------------------


async def instances(request: web.Request) -> web.StreamResponse:
    query = dict(request.query)
    filters = parse_filters(query)
    cursor = _param(query, "cursor")
    page = await list_instances(api_of(request), filters, limit=_limit(query, 50, 500), cursor=cursor)
    return json_reply({"instances": page.instances, "cursor": page.cursor, "scanned": page.scanned})


async def instance(request: web.Request) -> web.StreamResponse:
    user = user_of(request)
    return json_reply(await read_detail(nc_of(request), user.tenant, request.match_info["id"]))


async def history(request: web.Request) -> web.StreamResponse:
    api = api_of(request)
    iid = request.match_info["id"]
    records: list[Any] = []
    after = 0
    while True:
        reply = await api.history(iid, after_step=after, limit=1000)
        records += reply.records
        if not reply.more or not reply.records or len(records) >= 20_000:
            break
        after = reply.records[-1].step
    return json_reply({"records": records})


async def cancel(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 1000:
        raise BadRequest("reason must be a string of at most 1000 characters")
    reason = reason or f"cancelled in the console by {user_of(request).name}"
    return json_reply(await api_of(request).cancel(request.match_info["id"], reason))


async def set_variables(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    scope = body.get("scope")
    if scope is not None and (not isinstance(scope, int) or isinstance(scope, bool) or scope < 1):
        raise BadRequest("scope must be an element instance number (ei)")
    accepted = await api_of(request).set_variables(
        request.match_info["id"], _variables(body, required=True), scope=scope
    )
    return json_reply(accepted)


# --- processes --------------------------------------------------------------------------------


async def processes(request: web.Request) -> web.StreamResponse:
    return json_reply({"processes": await api_of(request).workflows()})


async def process(request: web.Request) -> web.StreamResponse:
    version = _param(dict(request.query), "version")
    if version is not None and not version.isdigit():
        raise BadRequest("version must be a number")
    reply = await api_of(request).workflow(
        request.match_info["pid"], int(version) if version else None, source=True
    )
    return json_reply(reply)


async def heatmap(request: web.Request) -> web.StreamResponse:
    """Active tokens and open incidents per element over the running instances of a version."""
    api = api_of(request)
    query = dict(request.query)
    version = _param(query, "version")
    if version is None or not version.isdigit():
        raise BadRequest("version must be a number")
    filters = parse_filters({"process": request.match_info["pid"], "version": version, "state": "active"})
    page = await list_instances(api, filters, limit=HEATMAP_LIMIT)
    active: dict[str, int] = {}
    incidents: dict[str, int] = {}
    sem = asyncio.Semaphore(16)

    async def count(iid: str) -> None:
        async with sem:
            try:
                view = await api.instance(iid)
            except NatsflowError:
                return  # ended and removed meanwhile
        for element in view.active_elements:
            active[element.element_id] = active.get(element.element_id, 0) + 1
        for incident in view.incidents:
            incidents[incident.element_id] = incidents.get(incident.element_id, 0) + 1

    await asyncio.gather(*(count(s.id) for s in page.instances))
    return json_reply(
        {
            "instances": len(page.instances),
            "active": active,
            "incidents": incidents,
            "truncated": page.cursor is not None,
        }
    )


async def deploy(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    source, name = body.get("source"), body.get("name")
    if not isinstance(source, str) or not source.strip():
        raise BadRequest("source must be the BPMN XML document (or a .form JSON document)")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise BadRequest(f"name must be a file name of at most {MAX_NAME} characters")
    if is_form(source, name):
        return json_reply({"deployed": [], "forms": [await api_of(request).deploy_form(source, name=name)]})
    return json_reply({"deployed": await api_of(request).deploy(source, name=name), "forms": []})


async def form(request: web.Request) -> web.StreamResponse:
    """A deployed Camunda form: ``schema`` is its JSON document."""
    reply = await api_of(request).form(request.match_info["id"])
    return json_reply({"form_id": reply.form_id, "version": reply.version, "schema": msgspec.json.decode(reply.source)})


# --- incidents --------------------------------------------------------------------------------


async def incidents(request: web.Request) -> web.StreamResponse:
    query = dict(request.query)
    found = await api_of(request).incidents(
        _param(query, "instance"), process_id=_param(query, "process"), limit=_limit(query, 500, 5000)
    )
    return json_reply({"incidents": found})


async def resolve(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    return json_reply(await api_of(request).resolve_incident(request.match_info["id"], _variables(body)))


# --- user tasks -------------------------------------------------------------------------------


async def tasks(request: web.Request) -> web.StreamResponse:
    query = dict(request.query)
    group = _param(query, "group")
    found = await api_of(request).tasks(
        _param(query, "instance"), assignee=_param(query, "assignee"), limit=_limit(query, 200, 1000)
    )
    if group is not None:
        found = [t for t in found if group in t.candidate_groups]
    return json_reply({"tasks": found})


async def claim(request: web.Request) -> web.StreamResponse:
    user = user_of(request)
    return json_reply(await api_of(request).claim_task(request.match_info["id"], user.name))


async def unclaim(request: web.Request) -> web.StreamResponse:
    api, tid = api_of(request), request.match_info["id"]
    return json_reply(await api.claim_task(tid, None, force=True))


async def complete(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    return json_reply(await api_of(request).complete_task(request.match_info["id"], _variables(body)))


# --- login and static files -------------------------------------------------------------------


def _login(users: Users, cookie: str) -> Handler:
    async def post(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str) or users.by_token(token) is None:
            raise web.HTTPFound("/login?failed=1")
        response = web.HTTPFound("/")
        secure = request.app[SETTINGS_KEY].secure_cookie
        response.set_cookie(cookie, token, httponly=True, samesite="Strict", secure=secure, path="/")
        raise response

    return post


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPFound("/login")
    response.del_cookie("nf_console", path="/")
    raise response


async def metrics(request: web.Request) -> web.StreamResponse:
    STREAMS.set(len(request.app[STREAMS_KEY]))
    body = generate_latest()
    extra = request.app.get(REGISTRY_KEY)
    if extra is not None:  # the tenant connections' metrics
        body += generate_latest(extra)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(
    app: web.Application, static: Path, *, users: Users, cookie: str, extra: Sequence[tuple[str, str, Handler]] = ()
) -> None:
    def page(name: str) -> Handler:
        async def serve(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(static / name, headers={"Cache-Control": "no-store"})

        return serve

    api = [
        ("GET", "/api/me", me),
        ("GET", "/api/instances", instances),
        ("GET", "/api/instances/{id}", instance),
        ("GET", "/api/instances/{id}/history", history),
        ("GET", "/api/instances/{id}/live", live.instance_stream),
        ("POST", "/api/instances/{id}/cancel", cancel),
        ("POST", "/api/instances/{id}/variables", set_variables),
        ("GET", "/api/events", live.tenant_stream),
        ("GET", "/api/processes", processes),
        ("GET", "/api/processes/{pid}", process),
        ("GET", "/api/processes/{pid}/heatmap", heatmap),
        ("POST", "/api/deploy", deploy),
        ("GET", "/api/forms/{id}", form),
        ("GET", "/api/incidents", incidents),
        ("POST", "/api/incidents/{id}/resolve", resolve),
        ("GET", "/api/tasks", tasks),
        ("POST", "/api/tasks/{id}/claim", claim),
        ("POST", "/api/tasks/{id}/unclaim", unclaim),
        ("POST", "/api/tasks/{id}/complete", complete),
    ]
    for method, path, handler in [*api, *extra]:
        app.router.add_route(method, path, _guarded(handler))
    app.router.add_get("/", page("index.html"))
    app.router.add_get("/login", page("login.html"))
    app.router.add_post("/login", _login(users, cookie))
    app.router.add_get("/logout", logout)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_static("/static/", static, append_version=False)
