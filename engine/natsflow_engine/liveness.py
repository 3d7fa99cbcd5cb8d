"""Whether a long-running component can still do its work, and what it does when it cannot.

nats-py reconnects by itself after a network failure (the components ask it to try for ever),
but some closes are for good: the server answered ``-ERR`` (a protocol line over its limit, a
payload or connection count over the account's limits) and nats-py closes the connection
without reconnecting; or a client with a bounded reconnect budget gave up. A component whose
connection is closed for good would otherwise run on as a zombie: alive to Kubernetes, doing
nothing.

:class:`ConnectionWatch` turns nats-py's close callback into a :class:`Liveness` verdict: a
close before the component began to stop (:meth:`Liveness.stopping`) makes it dead, with the
reason nats-py recorded. The health server answers ``/healthz`` with 503 and
that reason from then on, and the command's run loop stops its parts and exits non-zero, so
Kubernetes (or any supervisor) restarts it with a fresh connection.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client

__all__ = ["ConnectionWatch", "Liveness"]

log = logging.getLogger(__name__)


class Liveness:
    """Alive until :meth:`fail` is called; then :attr:`reason` says why, for good. Faults
    reported once the component is stopping on purpose (:meth:`stopping`) are no failure."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._dead = asyncio.Event()
        self._stopping = False

    def stopping(self) -> None:
        """The component stops on purpose (a signal): what closes from now on is expected."""
        self._stopping = True

    @property
    def alive(self) -> bool:
        return self.reason is None

    def fail(self, reason: str) -> None:
        """Mark the process dead (the first reason is kept)."""
        if self.reason is not None or self._stopping:
            return
        self.reason = reason
        log.error("%s", reason)
        self._dead.set()

    def probe(self) -> str | None:
        """None while alive, else the reason: what ``/healthz`` asks."""
        return self.reason

    async def wait(self) -> str:
        """Until dead; the reason."""
        await self._dead.wait()
        assert self.reason is not None
        return self.reason


class ConnectionWatch:
    """Watches one NATS connection of ``component``: pass :meth:`on_closed` as nats-py's
    ``closed_cb``, then :meth:`attach` the client. Call ``liveness.stopping()`` before closing
    the connection on purpose."""

    def __init__(self, component: str, liveness: Liveness | None = None) -> None:
        self.component = component
        self.liveness = liveness or Liveness()
        self.client: Client | None = None

    def attach(self, client: Client) -> Client:
        self.client = client
        if client.is_closed:  # closed before we could watch it
            self._lost()
        return client

    async def on_closed(self) -> None:
        if self.client is not None:
            self._lost()

    def _lost(self) -> None:
        error = self.client.last_error if self.client is not None else None
        cause = str(error).removeprefix("nats: ") if error else "by the server"
        self.liveness.fail(
            f"{self.component}: the NATS connection was closed for good ({cause}); "
            "exiting so that a restart connects again"
        )
