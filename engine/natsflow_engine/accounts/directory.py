"""Serve the tenants whose credentials are in a directory: one ``<tenant>.creds`` file each.

The operator keeps a Secret ``natsflow-tenant-credentials`` with one key ``<tenant>.creds`` per
Ready tenant (the platform user of that tenant's account); the chart mounts it as a directory
(``NATSFLOW_TENANT_CREDENTIALS_DIR``) and the kubelet updates the files in place. A process
polls the directory: a new file adds the tenant, a removed one stops serving it, a changed one
reconnects with the new credentials. :class:`TenantServing` starts, for each tenant whose
connection is ready, the services a process runs for it (an engine, an API server, a trigger
server, each bound to that tenant), and stops them when the connection is lost or the file
goes; :class:`TenantConnections` supervises each connection with its own backoff, so a tenant
with bad credentials never delays another.

Files that do not name a valid tenant (``..data`` and other kubelet entries, hidden files,
anything not ending in ``.creds``), and files over 64 KiB, are ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from natsflow_engine import layout
from natsflow_engine.accounts.connections import ConnectionSettings, TenantConnections, TenantCredentials
from natsflow_engine.errors import InvalidNameError
from natsflow_engine.natsutil import cancel_and_wait

__all__ = ["CREDENTIALS_DIR_ENV", "Service", "TenantServing", "read_credentials"]

log = logging.getLogger(__name__)

CREDENTIALS_DIR_ENV = "NATSFLOW_TENANT_CREDENTIALS_DIR"
"""The environment variable (and ``--tenant-credentials-dir``) naming the directory."""

MAX_CREDS = 64 * 1024
SUFFIX = ".creds"


class Service(Protocol):
    """Something a process runs for one tenant on that tenant's connection."""

    async def start(self) -> object: ...

    async def stop(self) -> None: ...


ServiceFactory = Callable[[str, Client], Sequence[Service]]
"""``(tenant, connection) -> services``, not started yet; started in order, stopped in reverse."""


def read_credentials(directory: Path) -> dict[str, str]:
    """``{tenant: creds text}`` of the directory (see the module docstring for what is skipped)."""
    found: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        name = path.name
        if name.startswith(".") or not name.endswith(SUFFIX):
            continue
        try:
            tenant = layout.validate_tenant(name[: -len(SUFFIX)])
        except InvalidNameError:
            log.warning("ignoring %s: its name is not <tenant>.creds with a valid tenant", path)
            continue
        try:
            if not path.is_file() or path.stat().st_size > MAX_CREDS:
                log.warning("ignoring %s: not a file of at most %d bytes", path, MAX_CREDS)
                continue
            found[tenant] = path.read_text()
        except OSError as exc:  # replaced while we read it: the next poll sees the new one
            log.warning("cannot read %s: %s", path, exc)
    return found


class TenantServing:
    """Poll a credentials directory and run ``services(tenant, nc)`` for every tenant in it."""

    def __init__(
        self,
        directory: Path,
        url: str,
        services: ServiceFactory,
        *,
        interval: float = 5.0,
        settings: ConnectionSettings | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.directory = directory
        self.url = url
        self.interval = interval
        self._factory = services
        self.connections = TenantConnections(
            settings, on_ready=self._ready, on_lost=self._lost, registry=registry
        )
        self.running: dict[str, list[Service]] = {}
        self._known: dict[str, str] = {}
        self._poll: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()
        """Set once the directory was read (and every tenant in it added) at least once."""

    async def start(self) -> TenantServing:
        await self.sync()
        self._poll = asyncio.get_running_loop().create_task(self._polling(), name="natsflow-tenant-credentials")
        return self

    async def stop(self) -> None:
        poll, self._poll = self._poll, None
        if poll is not None:
            await cancel_and_wait(poll)
        await self.connections.close()

    async def sync(self) -> None:
        """Read the directory once and bring the served tenants in line with it."""
        try:
            current = read_credentials(self.directory)
        except OSError as exc:  # the mount is not there (yet): keep serving what we have
            log.warning("cannot list tenant credentials in %s: %s", self.directory, exc)
            return
        for tenant in [t for t in self._known if t not in current]:
            log.info("tenant %s: credentials removed; no longer served", tenant)
            del self._known[tenant]
            await self.connections.remove(tenant)
        for tenant, creds in current.items():
            if self._known.get(tenant) == creds:
                continue
            log.info("tenant %s: %s credentials", tenant, "new" if tenant in self._known else "serving with")
            self._known[tenant] = creds
            await self.connections.add(TenantCredentials(tenant, self.url, creds))
        self.synced.set()

    async def _polling(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.sync()

    async def _ready(self, tenant: str, nc: Client) -> None:
        started: list[Service] = []
        try:
            for service in self._factory(tenant, nc):
                await service.start()
                started.append(service)
        except BaseException:
            await _stop_all(tenant, started)
            raise
        self.running[tenant] = started
        log.info("tenant %s: serving (%d services)", tenant, len(started))

    async def _lost(self, tenant: str) -> None:
        await _stop_all(tenant, self.running.pop(tenant, []))


async def _stop_all(tenant: str, services: list[Service]) -> None:
    for service in reversed(services):
        try:
            await service.stop()
        except Exception:
            log.exception("tenant %s: stopping %s failed", tenant, type(service).__name__)
