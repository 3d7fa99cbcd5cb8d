"""NATS connections of the reconcilers, cached per (server URL, credentials).

Each tenant can point at its own NATS account (``spec.natsRef`` -> Secret with ``url`` and
``creds``); objects sharing a URL and credentials share one connection. The first use of a
connection creates natsflow's streams and buckets in that account (:func:`ensure_layout`).

Users of the pool name themselves (``owner``: the Secret's namespace and name, or the default
connection): when a Secret's content changes (rotated credentials), the connection of its old
content is closed once no owner uses it. A connection being set up when the pool closes, or
whose setup is cancelled, is closed too: no nats-py task outlives the pool.

A NATS user without the permissions natsflow needs gets "Permissions Violation" errors, and its
JetStream requests time out; the pool remembers the last violation per connection so that the
caller reports :class:`NatsPermissionError` instead of an unreachable server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client, RawCredentials
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from natsflow_engine.errors import ConnectionFailedError, PermissionViolationError
from natsflow_engine.runtime.setup import LayoutSettings, ensure_layout, open_buckets

__all__ = ["NatsHandle", "NatsPermissionError", "NatsPool", "NatsTarget"]

DENIAL_MEMORY = 60.0
"""Seconds a permission violation explains a failing request on the same connection."""


NatsPermissionError = PermissionViolationError
"""The NATS user may not do what natsflow needs (a "Permissions Violation")."""


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NatsTarget:
    """Where to connect: server URL(s) and the content of a ``.creds`` file (JWT + seed)."""

    url: str
    creds: str | None = None
    creds_file: str | None = None

    def describe(self) -> str:
        return self.url.split("@")[-1]  # never log user:password of a URL


@dataclass
class NatsHandle:
    """One connection with its JetStream context and the natsflow buckets."""

    nc: Client
    js: JetStreamContext
    buckets: dict[str, KeyValue] = field(default_factory=dict)
    denials: list[tuple[float, str]] = field(default_factory=list)
    """(monotonic time, message) of the last permission violation, at most one."""

    def kv(self, bucket: str) -> KeyValue:
        return self.buckets[bucket]

    def denied(self) -> str | None:
        """The recent permission violation of this connection, if any."""
        if self.denials and time.monotonic() - self.denials[-1][0] < DENIAL_MEMORY:
            return self.denials[-1][1]
        return None


class NatsPool:
    """Connections by target; connect lazily, close all at shutdown."""

    def __init__(self, layout_settings: LayoutSettings | None = None, connect_timeout: float = 5.0) -> None:
        self._handles: dict[NatsTarget, NatsHandle] = {}
        self._locks: dict[NatsTarget, asyncio.Lock] = {}
        self._owners: dict[Hashable, NatsTarget] = {}
        self._connecting: set[Client] = set()
        self._layout = layout_settings or LayoutSettings()
        self._timeout = connect_timeout
        self._closed = False

    async def get(self, target: NatsTarget, owner: Hashable = None) -> NatsHandle:
        """The connection to ``target``; ``owner`` (a Secret) moving to another target releases
        the old one."""
        if self._closed:
            raise ConnectionFailedError("the NATS connections are closed (shutting down)")
        if owner is not None:
            previous, self._owners[owner] = self._owners.get(owner), target
            if previous is not None and previous != target:
                await self._release(previous)
        handle = self._handles.get(target)
        if handle is not None and not handle.nc.is_closed:
            return handle
        lock = self._locks.setdefault(target, asyncio.Lock())
        async with lock:
            handle = self._handles.get(target)
            if handle is None or handle.nc.is_closed:
                handle = await self._connect(target)
                self._handles[target] = handle
        return handle

    async def release_owner(self, owner: Hashable) -> None:
        """``owner`` no longer uses a connection; close it unless another owner does."""
        target = self._owners.pop(owner, None)
        if target is not None:
            await self._release(target)

    async def _release(self, target: NatsTarget) -> None:
        if target in self._owners.values():
            return  # another Secret (or the default) still has this content
        handle = self._handles.pop(target, None)
        self._locks.pop(target, None)
        if handle is not None and not handle.nc.is_closed:
            log.info("closing the NATS connection to %s (its Secret changed)", target.describe())
            await handle.nc.close()

    def open_targets(self) -> list[NatsTarget]:
        """Targets with an open connection (for tests and debugging)."""
        return [t for t, h in self._handles.items() if not h.nc.is_closed]

    async def _connect(self, target: NatsTarget) -> NatsHandle:
        denials: list[tuple[float, str]] = []

        async def on_error(exc: Exception) -> None:
            if "permissions violation" in str(exc).lower():
                denials[:] = [(time.monotonic(), str(exc).removeprefix("nats: "))]
            log.warning("NATS %s: %s", target.describe(), exc)

        creds: RawCredentials | str | None = None
        if target.creds:
            creds = RawCredentials(target.creds)
        elif target.creds_file:
            creds = target.creds_file
        try:
            nc = await nats.connect(
                servers=[url.strip() for url in target.url.split(",") if url.strip()],
                user_credentials=creds,
                connect_timeout=self._timeout,
                allow_reconnect=True,
                # Bounded: a lost connection ends closed and the next use reconnects; an
                # unbounded count would also make the first connect() wait forever.
                max_reconnect_attempts=3,
                reconnect_time_wait=0.5,
                error_cb=on_error,
                name="natsflow-operator",
            )
        except Exception as exc:  # nats-py raises plain OSError / TimeoutError / NoServersError
            raise ConnectionFailedError(f"cannot connect to NATS at {target.describe()}: {exc}") from exc
        self._connecting.add(nc)
        try:
            js = nc.jetstream(timeout=self._timeout)
            # One request first: a user without JetStream permissions fails here, before the
            # concurrent requests of ensure_layout (whose siblings outlive the first failure).
            await js.account_info()
            await ensure_layout(js, self._layout)
            buckets = await open_buckets(js)
            if self._closed:
                raise ConnectionFailedError("the NATS connections are closed (shutting down)")
        except BaseException as exc:  # cancelled too: never leave the client's tasks running
            await nc.close()
            if not isinstance(exc, Exception):
                raise
            if denials:
                subject = denials[-1][1].rpartition(" to ")[2].strip('"')
                raise NatsPermissionError(
                    f"NATS at {target.describe()} refused natsflow's setup: {denials[-1][1]}", subject
                ) from exc
            raise ConnectionFailedError(
                f"cannot set up natsflow in NATS at {target.describe()}: {exc}"
            ) from exc
        finally:
            self._connecting.discard(nc)
        log.info("connected to NATS at %s", target.describe())
        return NatsHandle(nc=nc, js=js, buckets=buckets, denials=denials)

    async def close(self) -> None:
        self._closed = True
        handles, self._handles = list(self._handles.values()), {}
        clients = [h.nc for h in handles] + list(self._connecting)
        for nc in clients:
            if not nc.is_closed:
                await nc.close()
