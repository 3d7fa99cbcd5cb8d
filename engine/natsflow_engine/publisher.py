"""A lean JetStream publisher for the engine's step: one reply subscription, counter tokens.

nats-py's ``js.publish`` is a request per call: a NUID and a random token for its inbox, a
future awaited through ``asyncio.wait_for`` (a timer per call), and the acknowledgement parsed
with ``json`` into a dataclass. The step of the reference process makes eight of them, and the
profile in docs/benchmarks.md shows that path, not NATS, as the engine's largest cost.

:class:`JetStreamPublisher` sends the same message (subject, headers, payload) with a reply
subject ``<inbox>.<counter>`` on one wildcard subscription it owns; the callback resolves the
future of that counter with the stream sequence, or fails it with the error nats-py would have
raised (:class:`~nats.js.errors.APIError` by code, ``NoStreamResponseError`` when no stream
took the subject). One task fails the futures that waited longer than the timeout with
:class:`nats.errors.TimeoutError`, every ``timeout / 4`` seconds. What the server stores, and
when, is exactly what ``js.publish`` gets; only the client's bookkeeping is cheaper.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import (
    APIError,
    BadRequestError,
    NoStreamResponseError,
    NotFoundError,
    ServerError,
    ServiceUnavailableError,
)

__all__ = ["JetStreamPublisher"]


class _Error(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _Ack(msgspec.Struct):
    seq: int = 0
    error: _Error | None = None


_ack_decoder = msgspec.json.Decoder(_Ack)
_BY_CODE: dict[int, type[APIError]] = {
    400: BadRequestError,
    404: NotFoundError,
    500: ServerError,
    503: ServiceUnavailableError,
}


def _api_error(error: _Error) -> APIError:
    """The error nats-py's ``js.publish`` raises for this answer (``APIError.from_error``)."""
    return _BY_CODE.get(error.code, APIError)(
        code=error.code, err_code=error.err_code, description=error.description
    )


class JetStreamPublisher:
    """JetStream publishes whose acknowledgements come back on one subscription (see the module
    docstring). :meth:`start` before use, :meth:`stop` when done (fails what is still waiting)."""

    def __init__(self, nc: Client, *, timeout: float = 5.0) -> None:
        self.nc = nc
        self.timeout = timeout
        self._prefix = ""
        self._ids = itertools.count()
        self._waiting: dict[str, tuple[asyncio.Future[int], float]] = {}
        """Reply subject → (future, deadline), in the order sent (so in deadline order)."""
        self._sub: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> JetStreamPublisher:
        self._prefix = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(
            f"{self._prefix}.*", cb=self._on_reply, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        self._sweeper = asyncio.create_task(self._sweep(), name="natsflow-publisher-timeouts")
        return self

    async def stop(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait([sweeper])
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        waiting, self._waiting = self._waiting, {}
        for future, _ in waiting.values():
            if not future.done():
                future.set_exception(nats.errors.ConnectionClosedError())

    @property
    def started(self) -> bool:
        return self._sub is not None

    async def send(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None
    ) -> asyncio.Future[int]:
        """Publish; the returned future gets the stream sequence (or the error) when the server
        answers. Awaiting this call only hands the message to the connection."""
        reply = f"{self._prefix}.{next(self._ids)}"
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[reply] = (future, time.monotonic() + self.timeout)
        try:
            await self.nc.publish(subject, data, reply=reply, headers=headers)
        except BaseException:
            self._waiting.pop(reply, None)
            future.cancel()
            raise
        return future

    async def publish(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> int:
        """Publish and wait for the acknowledgement: the stream sequence."""
        return await (await self.send(subject, data, headers))

    async def _on_reply(self, msg: Msg) -> None:
        found = self._waiting.pop(msg.subject, None)
        if found is None or found[0].done():
            return
        future = found[0]
        if not msg.data:  # a status message: 503 when no stream stores the subject
            status = (msg.headers or {}).get("Status", "")
            future.set_exception(
                NoStreamResponseError() if status == "503" else APIError(description=f"status {status}")
            )
            return
        try:
            ack = _ack_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            future.set_exception(APIError(description=f"unreadable acknowledgement: {exc}"))
            return
        if ack.error is not None:
            future.set_exception(_api_error(ack.error))
        else:
            future.set_result(ack.seq)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.timeout / 4)
            now = time.monotonic()
            expired = []
            for reply, (future, deadline) in self._waiting.items():
                if deadline > now:
                    break
                expired.append(reply)
                if not future.done():
                    future.set_exception(nats.errors.TimeoutError())
            for reply in expired:
                del self._waiting[reply]
