"""One NATS connection per tenant account, each supervised on its own.

A replica of the engine (or API, or trigger server) that serves many tenant accounts holds one
connection per account. :class:`TenantConnections` keeps them: it connects each tenant with
that tenant's credentials, calls ``on_ready(tenant, client)`` to start serving it (an engine on
that connection, for example) and ``on_lost(tenant)`` when the connection is gone for good
(nats-py gave up reconnecting, or the server closed it: credentials revoked or expired), then
retries with exponential backoff. Every tenant has its own task, state and backoff: one
tenant's failure (bad credentials, a callback that raises, an account over its limits, a
connection the server closed) never delays or stops another, nor the replica: it shows as that
tenant's state (:meth:`TenantConnections.health`), a warning per failure, and, given a
Prometheus registry, the metrics ``natsflow_tenant_connection_up{tenant}`` (1 while ready) and
``natsflow_tenant_connection_failures_total{tenant}``.

States of a tenant::

    connecting ──ok──▶ ready ◀──reconnected── reconnecting
        ▲                │  └──disconnected──────▲
        │            closed / on_ready failed
        └── backoff ◀────┘          (remove() or close(): stopped)
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client, RawCredentials
from prometheus_client import CollectorRegistry, Counter, Gauge

from natsflow_engine.errors import ConnectionFailedError, NotFoundError
from natsflow_engine.natsutil import cancel_and_wait

__all__ = [
    "ConnectionSettings",
    "TenantConnectionMetrics",
    "TenantConnections",
    "TenantCredentials",
    "TenantHealth",
    "TenantState",
    "backoff_delay",
]

log = logging.getLogger(__name__)

OnReady = Callable[[str, Client], Awaitable[None]]
OnLost = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ConnectionSettings:
    """How tenant connections are opened and retried."""

    initial_backoff: float = 0.5
    """Seconds before the first retry after a failure."""
    max_backoff: float = 30.0
    """Longest wait between two attempts."""
    multiplier: float = 2.0
    """Growth of the wait per consecutive failure."""
    connect_timeout: float = 5.0
    """Seconds one connection attempt may take."""
    reconnect_attempts: int = 10
    """Reconnects nats-py tries on its own (keeping subscriptions) before the connection counts
    as lost and the manager starts over with backoff."""
    reconnect_wait: float = 1.0
    """Seconds between those reconnects."""
    callback_timeout: float = 30.0
    """Seconds ``on_ready`` and ``on_lost`` may take."""


def backoff_delay(settings: ConnectionSettings, failures: int) -> float:
    """The wait after ``failures`` consecutive failures (1 for the first)."""
    exponent = max(0, failures - 1)
    return float(min(settings.max_backoff, settings.initial_backoff * settings.multiplier**exponent))


class TenantState(enum.Enum):
    CONNECTING = "connecting"
    READY = "ready"
    RECONNECTING = "reconnecting"
    BACKOFF = "backoff"
    STOPPED = "stopped"


@dataclass(frozen=True)
class TenantCredentials:
    """Where and as whom to connect for one tenant (``creds``: the text of a ``.creds`` file)."""

    tenant: str
    url: str
    creds: str = field(repr=False)


@dataclass
class TenantHealth:
    """What a health endpoint reports for one tenant."""

    tenant: str
    state: TenantState = TenantState.CONNECTING
    failures: int = 0
    """Consecutive failed attempts (0 once connected)."""
    last_error: str | None = None
    retry_in: float | None = None
    """Seconds of the current backoff wait, while in ``backoff``."""
    since: float = field(default_factory=time.monotonic)
    """Monotonic time of the last state change."""
    observer: Callable[[TenantHealth], None] | None = field(default=None, repr=False, compare=False)
    """Told of every state change (the metrics)."""

    def move(self, state: TenantState) -> None:
        self.state = state
        self.since = time.monotonic()
        if self.observer is not None:
            self.observer(self)


class TenantConnectionMetrics:
    """The Prometheus metrics of the tenant connections of one replica."""

    def __init__(self, registry: CollectorRegistry, *, namespace: str = "natsflow") -> None:
        self.up = Gauge(
            "tenant_connection_up",
            "1 while this replica's connection to the tenant's account is ready, else 0 "
            "(connecting, reconnecting, backing off after a failure).",
            ["tenant"],
            namespace=namespace,
            registry=registry,
        )
        self.failures = Counter(
            "tenant_connection_failures",
            "Connections to the tenant's account that failed to open or to serve, or were lost.",
            ["tenant"],
            namespace=namespace,
            registry=registry,
        )

    def changed(self, health: TenantHealth) -> None:
        if health.state is TenantState.STOPPED:
            with contextlib.suppress(KeyError):
                self.up.remove(health.tenant)
            return
        self.up.labels(health.tenant).set(1 if health.state is TenantState.READY else 0)
        if health.state is TenantState.BACKOFF:
            self.failures.labels(health.tenant).inc()


@dataclass
class _Tenant:
    credentials: TenantCredentials
    health: TenantHealth
    task: asyncio.Task[None] | None = None
    client: Client | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class TenantConnections:
    """See the module docstring. ``await add(...)`` per tenant, ``await close()`` at shutdown."""

    def __init__(
        self,
        settings: ConnectionSettings | None = None,
        *,
        on_ready: OnReady | None = None,
        on_lost: OnLost | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings or ConnectionSettings()
        self.metrics = TenantConnectionMetrics(registry) if registry is not None else None
        self._on_ready = on_ready
        self._on_lost = on_lost
        self._tenants: dict[str, _Tenant] = {}

    # --- membership -----------------------------------------------------------------------------

    async def add(self, credentials: TenantCredentials) -> None:
        """Serve a tenant; new credentials for a served tenant replace the connection."""
        current = self._tenants.get(credentials.tenant)
        if current is not None:
            if current.credentials == credentials:
                return
            await self.remove(credentials.tenant)
        observer = self.metrics.changed if self.metrics is not None else None
        entry = _Tenant(credentials, TenantHealth(credentials.tenant, observer=observer))
        entry.health.move(TenantState.CONNECTING)
        self._tenants[credentials.tenant] = entry
        entry.task = asyncio.get_running_loop().create_task(
            self._supervise(entry), name=f"natsflow-tenant-{credentials.tenant}"
        )

    async def remove(self, tenant: str) -> None:
        """Stop serving a tenant: ``on_lost`` if it was ready, then close its connection."""
        entry = self._tenants.pop(tenant, None)
        if entry is None or entry.task is None:
            return
        await cancel_and_wait(entry.task)

    async def close(self) -> None:
        await asyncio.gather(*(self.remove(t) for t in list(self._tenants)))

    # --- reading --------------------------------------------------------------------------------

    @property
    def tenants(self) -> list[str]:
        return sorted(self._tenants)

    def health(self, tenant: str) -> TenantHealth:
        try:
            return self._tenants[tenant].health
        except KeyError:
            raise NotFoundError(f"tenant {tenant!r} is not served by this replica") from None

    def client(self, tenant: str) -> Client:
        """The tenant's connection; :class:`ConnectionFailedError` while it is not ready."""
        health = self.health(tenant)
        entry = self._tenants[tenant]
        if entry.client is None or health.state is not TenantState.READY:
            raise ConnectionFailedError(
                f"tenant {tenant!r} is {health.state.value}: {health.last_error or 'not connected yet'}"
            )
        return entry.client

    async def wait_ready(self, tenant: str, timeout: float) -> Client:
        self.health(tenant)
        async with asyncio.timeout(timeout):
            await self._tenants[tenant].ready.wait()
        return self.client(tenant)

    # --- one tenant's life ----------------------------------------------------------------------

    async def _supervise(self, entry: _Tenant) -> None:
        health = entry.health
        try:
            while True:
                health.move(TenantState.CONNECTING)
                closed = asyncio.Event()
                try:
                    entry.client = await self._connect(entry, closed)
                    async with asyncio.timeout(self.settings.callback_timeout):
                        if self._on_ready is not None:
                            await self._on_ready(health.tenant, entry.client)
                except Exception as exc:  # a failure of this tenant only
                    await self._lost(entry, f"{type(exc).__name__}: {exc}", notify=entry.client is not None)
                else:
                    health.failures, health.last_error = 0, None
                    health.move(TenantState.READY)
                    entry.ready.set()
                    log.info("tenant %s: connected", health.tenant)
                    await closed.wait()
                    error = entry.client.last_error if entry.client else None
                    await self._lost(entry, f"connection closed: {error or 'by the server'}", notify=True)
                health.failures += 1
                health.retry_in = backoff_delay(self.settings, health.failures)
                health.move(TenantState.BACKOFF)
                log.warning(
                    "tenant %s: %s; retry %d in %.1fs",
                    health.tenant,
                    health.last_error,
                    health.failures,
                    health.retry_in,
                )
                await asyncio.sleep(health.retry_in)
                health.retry_in = None
        except asyncio.CancelledError:
            if health.state is TenantState.READY or health.state is TenantState.RECONNECTING:
                await self._lost(entry, None, notify=True)
            else:
                await self._close_client(entry)
            health.move(TenantState.STOPPED)
            raise

    async def _connect(self, entry: _Tenant, closed: asyncio.Event) -> Client:
        health = entry.health
        client = Client()

        async def on_disconnected() -> None:
            if health.state is TenantState.READY:
                health.move(TenantState.RECONNECTING)
                entry.ready.clear()

        async def on_reconnected() -> None:
            if health.state is TenantState.RECONNECTING:
                health.move(TenantState.READY)
                entry.ready.set()

        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(f"{type(exc).__name__}: {exc}")
            health.last_error = errors[-1]
            log.debug("tenant %s: %s", health.tenant, health.last_error)

        async def on_closed() -> None:
            closed.set()

        # nats-py annotates these two as int, but takes fractions of seconds
        timing: dict[str, Any] = {
            "connect_timeout": self.settings.connect_timeout,
            "reconnect_time_wait": self.settings.reconnect_wait,
        }
        try:
            await client.connect(
                entry.credentials.url,
                user_credentials=RawCredentials(entry.credentials.creds),
                name=f"natsflow-{health.tenant}",
                max_reconnect_attempts=self.settings.reconnect_attempts,
                **timing,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
                error_cb=on_error,
                closed_cb=on_closed,
            )
        except Exception as exc:
            await client.close()  # a failed client must not leak its transport
            # nats-py ends with "no servers available"; the server's reason went to error_cb
            reasons = "; ".join(dict.fromkeys(errors))
            raise ConnectionFailedError(f"{exc} ({reasons})" if reasons else str(exc)) from exc
        except BaseException:
            await client.close()
            raise
        return client

    async def _lost(self, entry: _Tenant, error: str | None, *, notify: bool) -> None:
        """The connection is gone (or never served): tell ``on_lost``, close the client."""
        entry.ready.clear()
        if error is not None:
            entry.health.last_error = error
        if notify and self._on_lost is not None:
            try:
                async with asyncio.timeout(self.settings.callback_timeout):
                    await self._on_lost(entry.health.tenant)
            except Exception:
                log.exception("tenant %s: on_lost failed", entry.health.tenant)
        await self._close_client(entry)

    @staticmethod
    async def _close_client(entry: _Tenant) -> None:
        client, entry.client = entry.client, None
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception):
                await client.close()
