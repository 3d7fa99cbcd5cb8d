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

Two more steps past nats-py, both on the connection's own (private) parts, checked when the
publisher starts (without them it uses nats-py's ``publish`` and subscription callback):

* the message is framed here (``HPUB``/``PUB`` with the header block) and appended to the
  connection's pending buffer as ``publish`` and ``_send_command`` do (without their
  coroutines), after their checks (closed, draining, buffer while reconnecting, payload size,
  whitespace in subjects and header values) but without validating a header name it has seen
  before;
* acknowledgements on the reply subscription are taken from the protocol parser
  (:func:`route`): the raw reply subject, payload and header block go to the publisher's
  callback, without a ``Msg``, header parsing, a queue or a task switch per acknowledgement.

docs/benchmarks.md ("a lean publisher", "frames, acknowledgements from the parser and the
collector's thresholds") has the measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
import weakref
from collections.abc import Awaitable, Callable

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

__all__ = ["JetStreamPublisher", "RawHandler", "parse_headers", "post", "route", "set_observer"]


class _Error(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _Ack(msgspec.Struct):
    seq: int = 0
    error: _Error | None = None


log = logging.getLogger(__name__)
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


RawHandler = Callable[[int, bytes, bytes, bytes, bytes | None], None]
"""A message as the protocol parser has it: subscription id, subject, reply subject, payload,
header block (or None)."""

_routes: weakref.WeakKeyDictionary[Client, dict[int, RawHandler]] = weakref.WeakKeyDictionary()
_observer: Callable[[str, bool], None] | None = None


def set_observer(observer: Callable[[str, bool], None] | None) -> None:
    """Call ``observer(subject, with_reply)`` for every message a publisher frames itself
    (the benches count messages by kind; nats-py's ``publish`` is not called for them)."""
    global _observer
    _observer = observer


def _lean(nc: Client) -> bool:
    """Whether this nats-py client has the private parts the lean paths use."""
    return all(
        hasattr(nc, name)
        for name in (
            "_process_msg", "_pending", "_status", "_flush_pending", "_flush_queue", "stats", "_max_payload",
            "_max_pending_size", "_pending_data_size",
        )
    )


def route(nc: Client, sid: int, handler: RawHandler | None) -> bool:
    """Give the messages of subscription ``sid`` to ``handler`` straight from the protocol
    parser (None: back to nats-py). The first route of a connection wraps its
    ``_process_msg``; False when this client cannot be wrapped (then nothing changed)."""
    routes = _routes.get(nc)
    if routes is None:
        if handler is None:
            return True
        if not _lean(nc):
            return False
        routes = _routes[nc] = {}
        original = nc._process_msg
        stats = nc.stats

        async def process_msg(sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
            own = routes.get(sid)
            if own is None:
                await original(sid, subject, reply, data, headers)  # type: ignore[arg-type]
                return
            stats["in_msgs"] += 1
            stats["in_bytes"] += len(data)
            try:
                own(sid, subject, reply, data, headers)
            except Exception:  # never into the parser: it would end the connection's read loop
                log.exception("a routed message on %r could not be handled", subject)

        nc._process_msg = process_msg  # type: ignore[method-assign]
    if handler is None:
        routes.pop(sid, None)
    else:
        routes[sid] = handler
    return True


def parse_headers(block: bytes) -> dict[str, str] | None:
    """The header dict nats-py makes of a raw header block (its ``_process_headers``): an
    inline status (``NATS/1.0 408 Request Timeout``) as ``Status`` and ``Description``, then
    ``Name: value`` lines; names that are not ASCII or hold whitespace are dropped."""
    lines = block.split(b"\r\n")
    out: dict[str, str] = {}
    first = lines[0]
    if len(first) > 9 and first[8:9] == b" ":
        status, _, description = first[9:].partition(b" ")
        code = status.strip().decode(errors="replace")
        if code.isdigit():
            out["Status"] = code
        if description:
            out["Description"] = description.decode(errors="replace")
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if not key or any(c.isspace() for c in key):
            continue
        out[key] = value.strip().decode("utf-8", "replace")
    return out if out or len(first) > 8 else None


async def post(nc: Client, subject: str, payload: bytes = b"") -> None:
    """A one-way message (an acknowledgement of a pulled message), framed and appended to the
    connection's buffer as a publisher's messages are; nats-py's ``publish`` while the
    connection is not connected, or on a client whose parts the publisher cannot use."""
    if nc not in _routes or nc._status != Client.CONNECTED or not subject or not _SUBJECT_BAD.isdisjoint(subject):
        await nc.publish(subject, payload)
        return
    size = len(payload)
    if size > nc._max_payload:
        raise nats.errors.MaxPayloadError
    _count(nc, subject, size, False)
    flush = _enqueue(nc, b"".join((f"PUB {subject} {size}\r\n".encode(), payload, b"\r\n")))
    if flush is not None:
        await flush


def _count(nc: Client, subject: str, size: int, with_reply: bool) -> None:
    """A framed message in the connection's statistics (as nats-py counts its own) and for
    the observer (:func:`set_observer`)."""
    if _observer is not None:
        _observer(subject, with_reply)
    stats = nc.stats
    stats["out_msgs"] += 1
    stats["out_bytes"] += size


def _enqueue(nc: Client, command: bytes) -> Awaitable[object] | None:
    """Append ``command`` to the connection's pending buffer as nats-py's ``_send_command``
    does; the flush to await when one must be asked for (the buffer is over its limit, or the
    flusher has nothing queued), else None."""
    nc._pending.append(command)
    nc._pending_data_size += len(command)
    if 0 < nc._max_pending_size < nc._pending_data_size:
        return nc._flush_pending(force_flush=True)
    if nc._flush_queue is not None and nc._flush_queue.empty():
        return nc._flush_pending()
    return None


_SUBJECT_BAD = frozenset(" \t\r\n")
_VALUE_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""What nats-py takes as a header name (an HTTP token)."""
_good_names: set[str] = set()


def _header_block(headers: dict[str, str]) -> bytes:
    """The ``NATS/1.0`` header block nats-py's ``publish`` writes for ``headers``."""
    lines = ["NATS/1.0\r\n"]
    for name, value in headers.items():
        key = name.strip()
        if not key:
            continue
        if key not in _good_names:
            if not _HEADER_NAME.fullmatch(key):
                raise nats.errors.BadHeaderError(key)
            if len(_good_names) < 256:
                _good_names.add(key)
        lines.append(f"{key}: {value.strip().translate(_VALUE_NEWLINES)}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode()


class JetStreamPublisher:
    """JetStream publishes whose acknowledgements come back on one subscription (see the module
    docstring). :meth:`start` before use, :meth:`stop` when done (fails what is still waiting)."""

    def __init__(self, nc: Client, *, timeout: float = 5.0, lean: bool = True) -> None:
        self.nc = nc
        self.timeout = timeout
        self.lean = lean
        """Frame messages and take acknowledgements from the parser (see the module
        docstring); False, or a client without the parts it needs: nats-py's own paths."""
        self._prefix = ""
        self._cut = 0
        self._ids = itertools.count()
        self._waiting: dict[int, tuple[asyncio.Future[int], float]] = {}
        """Reply number → (future, deadline), in the order sent (so in deadline order)."""
        self._sub: Subscription | None = None
        self._routed = False
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> JetStreamPublisher:
        self._prefix = self.nc.new_inbox()
        self._cut = len(self._prefix) + 1
        self._sub = await self.nc.subscribe(
            f"{self._prefix}.*", cb=self._on_reply, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        self.lean = self.lean and _lean(self.nc)
        self._routed = self.lean and route(self.nc, self._sub._id, self._on_raw)
        self._sweeper = asyncio.create_task(self._sweep(), name="natsflow-publisher-timeouts")
        return self

    async def stop(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait([sweeper])
        sub, self._sub = self._sub, None
        if sub is not None:
            if self._routed:
                route(self.nc, sub._id, None)
                self._routed = False
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
        number = next(self._ids)
        reply = f"{self._prefix}.{number}"
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[number] = (future, time.monotonic() + self.timeout)
        try:
            if self.lean:  # nats-py's publish and _send_command, without their coroutines
                flush = _enqueue(self.nc, self._frame(subject, reply, data, headers))
                if flush is not None:
                    await flush
            else:
                await self.nc.publish(subject, data, reply=reply, headers=headers)
        except BaseException:
            self._waiting.pop(number, None)
            future.cancel()
            raise
        return future

    async def publish(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> int:
        """Publish and wait for the acknowledgement: the stream sequence."""
        return await (await self.send(subject, data, headers))

    def _frame(self, subject: str, reply: str, data: bytes, headers: dict[str, str] | None) -> bytes:
        """The protocol command nats-py's ``publish`` writes for this message, after its checks
        (module docstring); counted in the connection's statistics."""
        nc = self.nc
        if not subject or not _SUBJECT_BAD.isdisjoint(subject):
            raise nats.errors.BadSubjectError
        size = len(data)
        if nc._status != Client.CONNECTED:
            if nc.is_closed:
                raise nats.errors.ConnectionClosedError
            if nc.is_draining_pubs:
                raise nats.errors.ConnectionDrainingError
            if not nc.is_connected and (
                nc._max_pending_size <= 0 or size + nc._pending_data_size > nc._max_pending_size
            ):
                raise nats.errors.OutboundBufferLimitError
        if size > nc._max_payload:
            raise nats.errors.MaxPayloadError
        if headers:
            block = _header_block(headers)
            command = b"".join(
                (f"HPUB {subject} {reply} {len(block)} {len(block) + size}\r\n".encode(), block, data, b"\r\n")
            )
        else:
            command = b"".join((f"PUB {subject} {reply} {size}\r\n".encode(), data, b"\r\n"))
        _count(nc, subject, size, True)
        return command

    def _number(self, subject: str | bytes) -> int:
        try:
            return int(subject[self._cut :])
        except ValueError:
            return -1

    async def _on_reply(self, msg: Msg) -> None:
        """nats-py's callback (without the parser route): the same as :meth:`_on_raw`."""
        status = (msg.headers or {}).get("Status", "") if not msg.data else ""
        self._answer(self._number(msg.subject), msg.data, status)

    def _on_raw(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        status = ""
        if not data and headers:  # "NATS/1.0 503\r\n...": a status message
            status = headers[9:12].decode(errors="replace")
        self._answer(self._number(subject), data, status)

    def _answer(self, number: int, data: bytes, status: str) -> None:
        found = self._waiting.pop(number, None)
        if found is None or found[0].done():
            return
        future = found[0]
        if not data:  # a status message: 503 when no stream stores the subject
            future.set_exception(
                NoStreamResponseError() if status == "503" else APIError(description=f"status {status}")
            )
            return
        try:
            ack = _ack_decoder.decode(data)
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
            for number, (future, deadline) in self._waiting.items():
                if deadline > now:
                    break
                expired.append(number)
                if not future.done():
                    future.set_exception(nats.errors.TimeoutError())
            for number in expired:
                del self._waiting[number]
