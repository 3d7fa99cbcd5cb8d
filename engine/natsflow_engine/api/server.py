"""The API server: a NATS micro service answering ``nf.api.<tenant>.<endpoint>`` requests.

Every replica joins the queue group ``natsflow-api`` on ``nf.api.*.<endpoint>`` for each
endpoint of :data:`natsflow_engine.api.protocol.ENDPOINTS`, so any replica answers any request,
for every tenant of the account (the tenant is the second subject token; NATS permissions on
``nf.api.<tenant>.>`` scope a client), or, with ``ApiSettings.tenant``, for the one tenant whose
account the connection belongs to (only its subjects are subscribed). It is a NATS micro service (``natsflow-api``): ``nats
micro ls`` / ``$SRV.PING`` find it, ``$SRV.STATS`` counts requests.

A request is handled in its own task (at most ``max_inflight`` at once; the rest wait in the
subscription). Whatever a request contains, the reply is an envelope: a result or a typed
error; a malformed request never stops the server. Shutdown runs in phases: leave the queue
groups, let requests in flight finish (bounded), cancel the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, InvalidKeyError
from nats.js.kv import KeyValue
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service, ServiceConfig

from natsflow_engine import layout, tracing
from natsflow_engine.api import protocol as p
from natsflow_engine.api.handlers import Handlers, check_names
from natsflow_engine.errors import (
    ForbiddenError,
    InvalidInputError,
    NatsflowError,
    PayloadTooLargeError,
    UnsupportedError,
)
from natsflow_engine.runtime.definitions import DefinitionCache
from natsflow_engine.runtime.setup import LayoutSettings, ensure_layout, open_buckets
from natsflow_engine.triggers.ledger import LaunchLedger

__all__ = ["ApiServer", "ApiSettings", "Authorizer"]

log = logging.getLogger(__name__)

Authorizer = Callable[[str, str, Mapping[str, str]], Awaitable[bool]]
"""``(tenant, endpoint, request headers) -> allowed``: an optional check before each request."""


@dataclass(frozen=True)
class ApiSettings:
    """How the API server serves; every field has a working default."""

    max_payload: int = 1024 * 1024
    """Largest request body and variables document accepted (``too_large`` beyond)."""
    max_inflight: int = 256
    """Requests handled at once by this replica."""
    queue_group: str = "natsflow-api"
    """Queue group shared by every replica."""
    shutdown_timeout: float = 10.0
    """Seconds requests in flight may take at stop before they are cancelled."""
    authorize: Authorizer | None = None
    """Optional hook; the tenant it gets always comes from the subject, never from the body."""
    replicas: int = 1
    """Replication of buckets the server creates on a fresh account."""
    tenant: str | None = None
    """The one tenant served (the connection is that tenant's account): only
    ``nf.api.<tenant>.<endpoint>`` is answered. None: every tenant of the account."""


async def open_messaging(js: JetStreamContext, buckets: dict[str, KeyValue]) -> tuple[Any | None, Any | None]:
    """(messaging, start index) of the engine's messaging module, or (None, None) without one.

    Imported lazily: the API serves everything else when message correlation is missing."""
    try:
        mod = importlib.import_module("natsflow_engine.runtime.messaging")
        messaging_cls, index_cls = mod.Messaging, mod.StartIndex
    except (ImportError, AttributeError) as exc:
        log.warning("messages and signals unavailable: %s", exc)
        return None, None
    workflows = buckets[layout.BUCKET_WORKFLOWS]
    index = await index_cls(workflows, DefinitionCache(workflows)).start()
    return messaging_cls(js, buckets[layout.BUCKET_MESSAGES], index), index


def _as_natsflow(exc: Exception) -> NatsflowError:
    """The natsflow error a failed request is answered with; anything unexpected is ``internal``."""
    if isinstance(exc, NatsflowError):
        return exc
    error = NatsflowError(f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


class ApiServer:
    """Serves the request-reply API for every tenant; see the module docstring."""

    def __init__(self, nc: Client, settings: ApiSettings | None = None) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.settings = settings or ApiSettings()
        self._sem = asyncio.Semaphore(self.settings.max_inflight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._service: Service | None = None
        self._start_index: Any | None = None
        self.handlers: Handlers
        self.requests = 0
        self.errors = 0

    async def start(self) -> ApiServer:
        try:
            buckets = await open_buckets(self.js)
        except BucketNotFoundError:
            await ensure_layout(self.js, LayoutSettings(replicas=self.settings.replicas))
            buckets = await open_buckets(self.js)
        ledger = await LaunchLedger.open(self.js, replicas=self.settings.replicas)
        messaging, self._start_index = await open_messaging(self.js, buckets)
        self.handlers = Handlers(self.js, buckets, ledger, self.settings.max_payload, messaging)
        service = await add_service(
            self.nc,
            ServiceConfig(
                name="natsflow-api",
                version="1.0.0",
                description="natsflow workflow API (nf.api.<tenant>.<endpoint>)",
                queue_group=self.settings.queue_group,
            ),
        )
        for endpoint in p.ENDPOINTS:
            await service.add_endpoint(
                name=endpoint,
                subject=f"{p.API_PREFIX}.{self.settings.tenant or '*'}.{endpoint}",
                handler=self._dispatcher(endpoint),
            )
        self._service = service
        await self.nc.flush()
        log.info("API serving %d endpoints on %s.*.<endpoint>", len(p.ENDPOINTS), p.API_PREFIX)
        return self

    async def stop(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            with contextlib.suppress(Exception):
                await service.stop()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.settings.shutdown_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        index, self._start_index = self._start_index, None
        if index is not None:
            await index.stop()
        log.info("API stopped after %d requests", self.requests)

    async def __aenter__(self) -> ApiServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._service is not None

    def _dispatcher(self, endpoint: str) -> Callable[[Request], Awaitable[None]]:
        async def dispatch(request: Request) -> None:
            await self._sem.acquire()
            task = asyncio.create_task(self._serve(endpoint, request), name=f"natsflow-api-{endpoint}")
            self._tasks.add(task)
            task.add_done_callback(self._done)

        return dispatch

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._sem.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("API request handling failed", exc_info=task.exception())

    async def _serve(self, endpoint: str, request: Request) -> None:
        self.requests += 1
        try:
            with tracing.span(f"api {endpoint}", request.headers, {"natsflow.subject": request.subject}):
                data = await self._answer(endpoint, request)
            headers = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors += 1
            error = _as_natsflow(exc)
            if error.api_code == NatsflowError.api_code:
                log.exception("API %s on %s failed", endpoint, request.subject)
            data = p.encode_exception(error)
            message = " ".join(str(error).split())[:500]
            headers = {"Nats-Service-Error-Code": error.api_code, "Nats-Service-Error": message}
        if len(data) > self.nc.max_payload:
            limit = self.nc.max_payload
            message = f"the reply would be {len(data)} bytes, more than NATS allows ({limit}); use paging"
            data = p.encode_exception(PayloadTooLargeError(message))
            headers = {"Nats-Service-Error-Code": PayloadTooLargeError.api_code, "Nats-Service-Error": message}
        try:
            await request.respond(data, headers=headers)
        except Exception as exc:  # no reply subject, or the connection is gone
            log.debug("API %s: cannot reply on %s: %s", endpoint, request.subject, exc)

    async def _answer(self, endpoint: str, request: Request) -> bytes:
        tokens = request.subject.split(".")
        try:
            tenant = layout.validate_tenant(tokens[2] if len(tokens) == 4 else "")
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc
        size, limit = len(request.data), self.settings.max_payload
        if size > limit:
            raise PayloadTooLargeError(f"the request is {size} bytes, more than the limit of {limit} bytes")
        authorize = self.settings.authorize
        if authorize is not None and not await authorize(tenant, endpoint, request.headers or {}):
            raise ForbiddenError(f"{endpoint} is not allowed for tenant {tenant!r}")
        body = _decode(request.data, p.ENDPOINTS[endpoint])
        if body.v > p.PROTOCOL_VERSION:
            raise UnsupportedError(
                f"request version {body.v} is newer than this server's {p.PROTOCOL_VERSION}"
            )
        check_names(body)
        handler = getattr(self.handlers, endpoint.replace("-", "_"))
        try:
            result = await handler(tenant, body)
        except InvalidKeyError as exc:  # a name no validation caught: still the caller's input
            raise InvalidInputError(f"a name or id in the request cannot be a NATS key: {exc}") from exc
        except ValueError as exc:  # bad input found below the handlers (tenant, names, numbers)
            raise InvalidInputError(str(exc)) from exc
        return p.encode_result(result)


def _decode(data: bytes, kind: type[p.Request]) -> p.Request:
    """The request body as ``kind``; malformed or mistyped bodies are :class:`InvalidInputError`."""
    try:
        return msgspec.json.decode(data.strip() or b"{}", type=kind)
    except msgspec.DecodeError as exc:  # a ValidationError too
        raise InvalidInputError(str(exc)) from exc
    except RecursionError as exc:
        raise InvalidInputError("the request is nested too deeply") from exc
