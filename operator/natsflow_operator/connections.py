"""NATS connections of the reconcilers, cached per (server URL, credentials).

Each tenant can point at its own NATS account (``spec.natsRef`` -> Secret with ``url`` and
``creds``); objects sharing a URL and credentials share one connection. The first use of a
connection creates natsflow's streams and buckets in that account (:func:`ensure_layout`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client, RawCredentials
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from natsflow_engine.errors import ConnectionFailedError
from natsflow_engine.runtime.setup import LayoutSettings, ensure_layout, open_buckets

__all__ = ["NatsHandle", "NatsPool", "NatsTarget"]

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

    def kv(self, bucket: str) -> KeyValue:
        return self.buckets[bucket]


class NatsPool:
    """Connections by target; connect lazily, close all at shutdown."""

    def __init__(self, layout_settings: LayoutSettings | None = None, connect_timeout: float = 5.0) -> None:
        self._handles: dict[NatsTarget, NatsHandle] = {}
        self._locks: dict[NatsTarget, asyncio.Lock] = {}
        self._layout = layout_settings or LayoutSettings()
        self._timeout = connect_timeout
        self._closed = False

    async def get(self, target: NatsTarget) -> NatsHandle:
        if self._closed:
            raise ConnectionFailedError("the NATS connections are closed (shutting down)")
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

    async def _connect(self, target: NatsTarget) -> NatsHandle:
        async def on_error(exc: Exception) -> None:
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
        try:
            js = nc.jetstream()
            await ensure_layout(js, self._layout)
            buckets = await open_buckets(js)
        except Exception as exc:
            await nc.close()
            raise ConnectionFailedError(
                f"cannot set up natsflow in NATS at {target.describe()}: {exc}"
            ) from exc
        log.info("connected to NATS at %s", target.describe())
        return NatsHandle(nc=nc, js=js, buckets=buckets)

    async def close(self) -> None:
        self._closed = True
        handles, self._handles = list(self._handles.values()), {}
        for handle in handles:
            if not handle.nc.is_closed:
                await handle.nc.close()
