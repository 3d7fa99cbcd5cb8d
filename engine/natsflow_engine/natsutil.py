"""Small helpers over nats-py where its own API falls short."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import ServiceUnavailableError
from nats.js.kv import KeyValue

from natsflow_engine.publisher import parse_headers, post, route

__all__ = ["PullLoop", "cancel_and_wait", "deliveries", "list_keys", "list_kv_keys"]

log = logging.getLogger(__name__)


_DELETED = ("DEL", "PURGE")


def deliveries(msg: Msg) -> int:
    """How often a JetStream message has been delivered (this delivery included), read from its
    acknowledgement subject as ``msg.metadata.num_delivered`` is, without building the rest of
    the metadata (timestamps, sequences): the worker asks for it on every job."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) >= 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        field = tokens[4] if len(tokens) == 9 else tokens[6]  # v1: no domain and account hash
        if field.isdigit():
            return int(field)
    return msg.metadata.num_delivered  # anything else: nats-py's answer (or its error)


async def cancel_and_wait(task: asyncio.Task[object], *, timeout: float = 10.0) -> None:
    """Cancel ``task`` and wait until it has ended, at most ``timeout`` seconds.

    A task can swallow a cancel without meaning to: Python 3.11's ``asyncio.wait_for``
    returns the inner result, and drops the cancel, when the awaited thing completes in the
    same turn of the loop as the cancel arrives. So the task is cancelled again each second
    it is still running, and its caller is never held longer than ``timeout`` (a warning says
    which task was left behind). A cancel of the caller itself is passed on, not swallowed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning("task %s did not end within %.1f s of being cancelled", task.get_name(), timeout)
            return
        task.cancel()
        await asyncio.wait([task], timeout=min(remaining, 1.0))
    if not task.cancelled() and task.exception() is not None:
        log.warning("task %s ended with %r", task.get_name(), task.exception())

_LISTING_ATTEMPTS = 6
"""Tries of one listing while JetStream answers "unavailable" (a leader being elected)."""

_TRANSIENT = (ServiceUnavailableError, NoRespondersError, NatsTimeoutError)


async def list_kv_keys(
    js: JetStreamContext, bucket: str, pattern: str = ">", *, batch: int = 1000
) -> list[str]:
    """Live keys of ``bucket`` matching the subject-style ``pattern``, each once.

    In a cluster, a stream or consumer leader being elected (a server restarted) answers
    "503 no responders" for a few seconds; the listing is then started again, after 0.25, 0.5,
    1, 2 and 4 s, and the last error is raised when every try failed."""
    for attempt in range(_LISTING_ATTEMPTS):
        try:
            return await _list_kv_keys_once(js, bucket, pattern, batch)
        except _TRANSIENT:
            if attempt == _LISTING_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.25 * 2**attempt)
    raise AssertionError("unreachable")


async def _list_kv_keys_once(js: JetStreamContext, bucket: str, pattern: str, batch: int) -> list[str]:
    """One listing (see :func:`list_kv_keys`).

    nats-py's ``kv.keys(filters=)`` matches substrings after fetching every key, and its
    ``watch`` decides "no more keys" from a counter that races with pushed messages (seen under
    load: 0 keys of 700). An ephemeral *pull* consumer (last message per subject, headers only)
    delivers nothing before it is asked and every message carries the exact number still
    pending, so the end is known without a race.

    A key rewritten while the listing runs is still listed (KV keeps one revision per key, so
    its old message is gone and its new one arrives after the initial set: the listing reads
    until nothing is pending, within a budget)."""
    stream, prefix = f"KV_{bucket}", f"$KV.{bucket}."
    info = await js.add_consumer(
        stream,
        ConsumerConfig(
            filter_subject=prefix + pattern,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            ack_policy=AckPolicy.NONE,
            headers_only=True,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        ),
    )
    assert info.name is not None
    live: dict[str, None] = {}
    try:
        remaining = info.num_pending or 0
        if remaining == 0:
            return []
        budget = 2 * remaining + 10 * batch  # a bound when keys are written faster than we read
        psub = await js.pull_subscribe_bind(durable=info.name, stream=stream)
        try:
            while remaining > 0 and budget > 0:
                for msg in await psub.fetch(min(batch, remaining), timeout=5.0):
                    remaining, budget = msg.metadata.num_pending, budget - 1
                    key = msg.subject[len(prefix) :]
                    headers = msg.headers or {}
                    if headers.get("KV-Operation") in _DELETED or "Nats-Marker-Reason" in headers:
                        live.pop(key, None)
                    else:
                        live[key] = None
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, info.name)
    return list(live)


async def list_keys(kv: KeyValue, pattern: str = ">") -> list[str]:
    """Live keys of a bucket handle matching ``pattern`` (see :func:`list_kv_keys`)."""
    return await list_kv_keys(kv._js, kv._name, pattern)


class _Pulled(Msg):
    """A pulled message whose header block is parsed when first read (with tracing off the
    engine and the worker never read the headers of a command or job), and whose ``ack`` is
    framed by :func:`~natsflow_engine.publisher.post`."""

    @property
    def headers(self) -> dict[str, str] | None:
        raw = self.__dict__.pop("_raw_headers", None)
        if raw is not None:
            self.__dict__["_headers"] = parse_headers(raw)
        return self.__dict__.get("_headers")

    @headers.setter
    def headers(self, value: dict[str, str] | None) -> None:
        self.__dict__.pop("_raw_headers", None)
        self.__dict__["_headers"] = value

    async def ack(self) -> None:
        """As nats-py's ``ack``, the acknowledgement framed like the publisher's messages."""
        self._check_reply()
        await post(self._client, self.reply)
        self._ackd = True


class PullLoop:
    """Continuous pulling from a durable pull consumer, with bounded in-flight work.

    nats-py's ``fetch(batch)`` holds the first messages back until the batch is full or its
    timeout passes, which adds up to a timeout of latency to every step on a quiet system. This
    loop keeps pull requests outstanding (each with ``expires``) for as many messages as there
    is room for, hands every message to ``handler`` as soon as it arrives (in its own task),
    and asks for more as handlers finish: the pattern of ``Consume()`` in the Go client.

    When no consumer answers a pull (status 503: it does not exist, as after a standalone
    server lost a consumer kept in memory) or the consumer is deleted under it (409), the loop
    stops asking, awaits ``recreate`` (which makes sure the consumer exists; retried with a
    growing delay while it fails) and pulls again, instead of asking in a tight loop.
    """

    def __init__(
        self,
        nc: Client,
        stream: str,
        consumer: str,
        handler: Callable[[Msg], Awaitable[None]],
        *,
        max_inflight: int = 256,
        batch: int = 256,
        expires: float = 5.0,
        name: str = "pull",
        api_prefix: str = "$JS.API",
        recreate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.nc = nc
        self.recreate = recreate
        self.recreated = 0
        """Times the consumer was found missing and ``recreate`` succeeded."""
        self.subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.handler = handler
        self.max_inflight = max_inflight
        self.batch = batch
        self.expires = expires
        self.name = name
        self.inflight = 0
        self._requests: deque[list[float]] = deque()  # [deadline, messages still owed]
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._pumping = False
        self._missing: asyncio.Task[None] | None = None
        self._outage = False
        """The consumer was found missing and no message arrived since (warned once)."""
        self._inbox = ""
        self._routed = False

    @property
    def outstanding(self) -> int:
        return int(sum(r[1] for r in self._requests))

    async def start(self) -> PullLoop:
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(self._inbox, cb=self._on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        # messages straight from the protocol parser, without nats-py's queue and task switch
        self._routed = route(self.nc, self._sub._id, self._on_raw)
        self._pumping = True
        self._pump_task = asyncio.create_task(self._pump(), name=f"natsflow-{self.name}-pump")
        return self

    async def stop_pulling(self) -> None:
        """Ask for nothing more and stop taking messages; in-flight handlers keep running."""
        self._pumping = False
        self._wake.set()  # the pump sees the flag and ends, whatever became of a cancel
        for task in (self._pump_task, self._missing):
            if task is not None:
                await cancel_and_wait(task)
        self._pump_task = self._missing = None
        if self._sub is not None:
            if self._routed:
                route(self.nc, self._sub._id, None)
                self._routed = False
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` for in-flight handlers, then cancel the rest."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    def _on_raw(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        if data or not headers:
            msg: Msg = _Pulled(_client=self.nc, subject=subject.decode(), reply=reply.decode(), data=data, _sid=sid)
            if headers:
                msg.__dict__["_raw_headers"] = headers
        else:  # a status: read at once
            msg = Msg(_client=self.nc, subject=subject.decode(), reply=reply.decode(), headers=parse_headers(headers),
                      _sid=sid)
        self._take(msg)

    async def _on_msg(self, msg: Msg) -> None:
        """nats-py's callback (when the subscription is not routed)."""
        self._take(msg)

    def _take(self, msg: Msg) -> None:
        if self._sub is None:
            return  # stopping: an unacknowledged message is redelivered after its ack wait
        headers = {} if msg.data else msg.headers or {}  # a status message has no data
        status = headers.get("Status")
        if status is not None:
            owed = headers.get("Nats-Pending-Messages")
            if self._requests:
                self._requests.popleft()
            description = headers.get("Description", "")
            if status == "503" or (status == "409" and "Deleted" in description):
                self._consumer_missing(status, description)
                return
            if status not in ("404", "408") or owed is None:
                log.debug("%s: pull status %s %s", self.name, status, description)
            self._wake.set()
            return
        if self._outage:
            self._outage = False
            log.info("%s: %s delivers again", self.name, self.subject)
        for request in self._requests:
            if request[1] > 0:
                request[1] -= 1
                if request[1] == 0:
                    self._requests.remove(request)
                break
        self.inflight += 1
        task = asyncio.create_task(self._run(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _consumer_missing(self, status: str, description: str) -> None:
        if self._missing is None or self._missing.done():
            # once per outage: while a leaf link is down every pull is answered 503 again
            log.log(logging.DEBUG if self._outage else logging.WARNING,
                    "%s: %s has no consumer (%s %s); making sure it exists", self.name, self.subject, status,
                    description.strip())
            self._outage = True
            self._missing = asyncio.create_task(self._recover(), name=f"natsflow-{self.name}-recreate")

    async def _recover(self) -> None:
        delay = 0.25
        try:
            while self._pumping:
                try:
                    if self.recreate is not None:
                        await self.recreate()
                        self.recreated += 1
                    else:
                        await asyncio.sleep(delay)  # someone else creates it: ask again later
                    return
                except Exception as exc:
                    log.warning("%s: consumer not created again (%s); next try in %.2f s", self.name, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            self._requests.clear()  # answered with the status, or never: ask afresh
            self._wake.set()

    async def _run(self, msg: Msg) -> None:
        try:
            await self.handler(msg)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: handler failed on %s", self.name, msg.subject)
        finally:
            self.inflight -= 1
            self._wake.set()

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pumping:
            if self._missing is not None and not self._missing.done():
                self._wake.clear()
                await self._wake.wait()  # set when the consumer is back (or on stop)
                continue
            now = loop.time()
            while self._requests and self._requests[0][0] < now:
                self._requests.popleft()  # expired without a status reaching us
            room = self.max_inflight - self.inflight - self.outstanding
            if room > 0 and (room >= min(self.batch, self.max_inflight) // 4 or not self._requests):
                ask = min(room, self.batch)
                request = {"batch": ask, "expires": int(self.expires * 1e9)}
                self._requests.append([now + self.expires + 1.0, ask])
                try:
                    await self.nc.publish(self.subject, json.dumps(request).encode(), reply=self._inbox)
                except Exception as exc:  # disconnected: try again shortly
                    self._requests.pop()
                    log.warning("%s: pull request failed: %s", self.name, exc)
                    await asyncio.sleep(0.5)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.expires / 2)
