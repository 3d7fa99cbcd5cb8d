"""The aiohttp application: authentication, error replies, static files, start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from nats.aio.client import Client
from natsflow_engine.accounts.connections import TenantConnections
from prometheus_client import CollectorRegistry

from natsflow_console import design, routes, sessions
from natsflow_console.auth import User, Users
from natsflow_console.errors import error_response
from natsflow_console.keys import NC_KEY, REGISTRY_KEY, SETTINGS_KEY, STREAMS_KEY, TENANTS_KEY, USER_KEY

__all__ = ["Console", "ConsoleSettings"]

log = logging.getLogger(__name__)

COOKIE = "nf_console"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PUBLIC = ("/login", "/static/", "/healthz", "/readyz", "/metrics")


@dataclass
class ConsoleSettings:
    """How the console listens and authenticates (every field has a safe default)."""

    host: str = "127.0.0.1"
    """Address to listen on (``0.0.0.0`` in a container)."""
    port: int = 8088
    """Port to listen on (0: a free one, see :attr:`Console.url`)."""
    proxy_user_header: str | None = None
    """Trust this request header for the user name (set only behind an authenticating proxy)."""
    secure_cookie: bool = False
    """Mark the session cookie ``Secure`` (when served over HTTPS)."""
    max_body: int = 2 * 1024 * 1024
    """Largest request body accepted (a BPMN upload), bytes."""
    keepalive: float = 15.0
    """Seconds between comments on an idle event stream (keeps proxies from closing it)."""


def _static_dir() -> Path:
    return Path(str(resources.files("natsflow_console") / "static"))


def _authenticate(request: web.Request, users: Users, settings: ConsoleSettings) -> User | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return users.by_token(header[7:].strip())
    if settings.proxy_user_header:
        name = request.headers.get(settings.proxy_user_header)
        if name:
            return users.by_name(name.strip())
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return users.by_token(cookie)
    return None


def _changes(request: web.Request, sandbox: frozenset[str]) -> bool:
    """Whether the request may change something: any method but GET and HEAD, except the
    modeler's routes (``sandbox``), which validate, simulate and export without touching the
    tenant's instances, workers or definitions."""
    if request.method in ("GET", "HEAD"):
        return False
    resource = request.match_info.route.resource
    return resource is None or resource.canonical not in sandbox


def _middleware(
    users: Users, settings: ConsoleSettings, sandbox: frozenset[str]
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not any(path == p or (p.endswith("/") and path.startswith(p)) for p in _PUBLIC):
            user = _authenticate(request, users, settings)
            if user is None:
                if path.startswith("/api/"):
                    return error_response(401, "unauthorized", "sign in: a bearer token or session cookie")
                raise web.HTTPFound("/login")
            if not user.can_write and _changes(request, sandbox):
                return error_response(403, "forbidden", f"user {user.name} has the read-only role")
            request[USER_KEY] = user
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; font-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'",
        )
        return response

    return guard


class Console:
    """The console's HTTP server over an open NATS connection, or over one connection per
    tenant account (``tenants``: each user acts with their tenant's connection)."""

    def __init__(
        self,
        nc: Client | None,
        users: Users,
        settings: ConsoleSettings | None = None,
        *,
        tenants: TenantConnections | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """``registry``: more metrics for ``/metrics`` (the tenant connections' gauges)."""
        if (nc is None) == (tenants is None):
            raise ValueError("give the console either one connection or tenant connections")
        self.nc = nc
        self.tenants = tenants
        self.registry = registry
        self.users = users
        self.settings = settings or ConsoleSettings()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.streams: set[asyncio.Task[Any]] = set()

    def make_app(self) -> web.Application:
        modeler = [*design.ROUTES, *sessions.ROUTES]  # they touch nothing of the tenant
        sandbox = frozenset(path for _, path, _ in modeler)
        app = web.Application(
            middlewares=[_middleware(self.users, self.settings, sandbox)], client_max_size=self.settings.max_body
        )
        if self.nc is not None:
            app[NC_KEY] = self.nc
        if self.tenants is not None:
            app[TENANTS_KEY] = self.tenants
        if self.registry is not None:
            app[REGISTRY_KEY] = self.registry
        app[SETTINGS_KEY] = self.settings
        app[STREAMS_KEY] = self.streams
        routes.add_routes(app, _static_dir(), users=self.users, cookie=COOKIE, extra=modeler)
        sessions.install(app)
        app.on_shutdown.append(self._close_streams)
        return app

    async def _close_streams(self, app: web.Application) -> None:
        for task in list(self.streams):
            task.cancel()
        if self.streams:
            await asyncio.wait(set(self.streams), timeout=5)

    async def start(self) -> Console:
        self._runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=2
        )
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await self._site.start()
        log.info("console listening on %s", self.url)
        return self

    @property
    def url(self) -> str:
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the console is not running")
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.cleanup()

    async def __aenter__(self) -> Console:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
