"""Health, readiness, metrics and log setup shared by the engine, the operator and the trigger server.

- :class:`HealthServer`: a tiny HTTP/1.1 server on ``asyncio.start_server`` (no extra dependency)
  serving ``/healthz`` (the process and its event loop answer, and its ``liveness`` probe, if
  any, reports no fatal fault), ``/readyz`` (every registered
  readiness check passes) and ``/metrics`` (Prometheus text format of one registry).
- :class:`Metrics`: the Prometheus metric objects of natsflow, on a registry of their own (never the
  global one, so tests and several components in one process do not collide).
- :class:`StepObserver`: what the engine reports about each step (the base does nothing but
  set the log context); :class:`MetricsObserver` turns it into the engine metrics.
- :func:`configure_logging`: ``text`` or ``json`` logs on stderr; lines carry ``tenant``,
  ``instance`` and ``element`` when a :class:`ContextAdapter` (or any ``extra=``) sets them, and
  every line logged while the engine applies a command carries its tenant and instance, and
  the element when the command concerns one (:func:`log_element`).

Settings come from the environment the Helm chart sets: ``NATSFLOW_HEALTH_PORT``,
``NATSFLOW_LOG_FORMAT``, ``NATSFLOW_LOG_LEVEL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from types import TracebackType
from typing import Any, Literal, Self, TextIO

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from natsflow_engine.runtime.records import HistoryEvent, HistoryRecord

__all__ = [
    "CONTEXT_FIELDS",
    "DEFAULT_HEALTH_PORT",
    "ContextAdapter",
    "HealthServer",
    "JsonFormatter",
    "Metrics",
    "MetricsObserver",
    "ReadinessCheck",
    "StepObserver",
    "TextFormatter",
    "configure_logging",
    "health_port_from_env",
    "log_element",
]

log = logging.getLogger(__name__)

DEFAULT_HEALTH_PORT = 8080
"""Port of /healthz, /readyz and /metrics in every container (the chart's ``health.port``)."""

ReadinessCheck = Callable[[], Awaitable[bool]]
"""An async callable answering "is this dependency usable now?"; an exception counts as ``False``."""

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
_TEXT = "text/plain; charset=utf-8"


def health_port_from_env(environ: Mapping[str, str] | None = None) -> int:
    """``NATSFLOW_HEALTH_PORT`` as an int, else :data:`DEFAULT_HEALTH_PORT`."""
    env = os.environ if environ is None else environ
    raw = env.get("NATSFLOW_HEALTH_PORT", "").strip()
    if not raw:
        return DEFAULT_HEALTH_PORT
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"NATSFLOW_HEALTH_PORT must be a port number, got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"NATSFLOW_HEALTH_PORT must be within 0..65535, got {port}")
    return port


class HealthServer:
    """Serves ``/healthz``, ``/readyz`` and ``/metrics`` over HTTP/1.1 (one request per connection).

    ``port=0`` binds a free port; read the bound one from :attr:`port` after :meth:`start`.
    Readiness checks run concurrently, each bounded by ``check_timeout`` seconds. Without a
    ``registry``, ``/metrics`` answers 404.

    Use as ``async with HealthServer("0.0.0.0", 8080, registry=metrics.registry) as server: ...``
    or call :meth:`start` and :meth:`stop` yourself.
    """

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = DEFAULT_HEALTH_PORT,
        *,
        registry: CollectorRegistry | None = None,
        check_timeout: float = 2.0,
        request_timeout: float = 5.0,
        liveness: Callable[[], str | None] | None = None,
    ) -> None:
        self.host = host
        self.liveness = liveness
        """None while the process can work, else why not (``/healthz`` then answers 503)."""
        self._port = port
        self.registry = registry
        self.check_timeout = check_timeout
        self.request_timeout = request_timeout
        self._checks: dict[str, ReadinessCheck] = {}
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    # -- configuration ---------------------------------------------------------------------

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        """Register a readiness check; ``/readyz`` answers 200 only while every check returns True."""
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"a readiness check needs a name without spaces, got {name!r}")
        if name in self._checks:
            raise ValueError(f"a readiness check named {name!r} is already registered")
        self._checks[name] = check

    def remove_check(self, name: str) -> None:
        self._checks.pop(name, None)

    @property
    def port(self) -> int:
        """The bound port once started (useful with ``port=0``), else the configured one."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def started(self) -> bool:
        return self._server is not None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> Self:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, self.host, self._port, limit=16 * 1024)
            log.info("health server listening on %s:%s", self.host, self.port)
        return self

    async def stop(self) -> None:
        """Stop listening, then end requests in flight in phases: close their connections, wait
        (bounded by ``request_timeout``), cancel what is left."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in self._connections.values():
            writer.close()  # the handler sees EOF and returns on its own
        if self._connections:
            _, pending = await asyncio.wait(list(self._connections), timeout=self.request_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=self.request_timeout)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.request_timeout):
                await server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- readiness -------------------------------------------------------------------------

    async def readiness(self) -> tuple[bool, list[tuple[str, bool, str]]]:
        """Run every check once: (all passed, [(name, passed, detail), ...]) in registration order."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run_check(self._checks[n]) for n in names))
        report = [(name, ok, detail) for name, (ok, detail) in zip(names, results, strict=True)]
        return all(ok for _, ok, _ in report), report

    async def _run_check(self, check: ReadinessCheck) -> tuple[bool, str]:
        try:
            async with asyncio.timeout(self.check_timeout):
                ok = await check()
        except TimeoutError:
            return False, f"timed out after {self.check_timeout:g}s"
        except Exception as exc:  # a failing dependency is "not ready", never a crashed probe
            return False, f"{type(exc).__name__}: {exc}"
        return (True, "ok") if ok is True else (False, "failed")

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = writer
        try:
            status, ctype, body, head_only, extra = await self._respond(reader)
            await self._write(writer, status, ctype, body, head_only, extra)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            if task is not None:
                self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes, bool, dict[str, str]]:
        try:
            async with asyncio.timeout(self.request_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            return 408, _TEXT, b"request timeout\n", False, {}
        except asyncio.LimitOverrunError:
            return 431, _TEXT, b"request head too large\n", False, {}
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return 400, _TEXT, b"bad request\n", False, {}
        method, target, _version = parts
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, _TEXT, b"method not allowed\n", False, {"Allow": "GET, HEAD"}
        head_only = method == "HEAD"
        if path == "/healthz":
            dead = self.liveness() if self.liveness is not None else None
            if dead is not None:
                return 503, _TEXT, f"dead: {dead}\n".encode(), head_only, {}
            return 200, _TEXT, b"ok\n", head_only, {}
        if path == "/readyz":
            ready, report = await self.readiness()
            lines = [f"[{'+' if ok else '-'}]{name} {detail}" for name, ok, detail in report]
            lines.append("ready" if ready else "not ready")
            body = ("\n".join(lines) + "\n").encode()
            return (200 if ready else 503), _TEXT, body, head_only, {}
        if path == "/metrics" and self.registry is not None:
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry), head_only, {}
        return 404, _TEXT, b"not found\n", head_only, {}

    @staticmethod
    async def _write(
        writer: asyncio.StreamWriter,
        status: int,
        ctype: str,
        body: bytes,
        head_only: bool,
        extra: dict[str, str],
    ) -> None:
        headers = {
            "Content-Type": ctype,
            "Content-Length": str(len(body)),
            "Cache-Control": "no-store",
            "Connection": "close",
            **extra,
        }
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1") + (b"" if head_only else body))
        await writer.drain()


class Metrics:
    """Every natsflow Prometheus metric, registered on ``registry`` (a fresh one by default).

    Label sets are kept small (tenant = namespace, never instance ids) so cardinality stays bounded.
    """

    STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

    def __init__(self, registry: CollectorRegistry | None = None, *, namespace: str = "natsflow") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r, ns = self.registry, namespace
        # Engine.
        self.steps_total = Counter(
            "engine_steps",
            "Commands applied to instances, by command type and outcome "
            "(applied, unchanged, duplicate, conflict, error).",
            ["tenant", "command", "outcome"],
            namespace=ns,
            registry=r,
        )
        self.step_seconds = Histogram(
            "engine_step_seconds",
            "Time of one step: load, interpret, write, publish effects.",
            ["command"],
            namespace=ns,
            registry=r,
            buckets=self.STEP_BUCKETS,
        )
        self.instances_total = Counter(
            "engine_instances",
            "Process instances that started, completed or were cancelled (one per instance and "
            "event; active = started - completed - cancelled).",
            ["tenant", "event"],
            namespace=ns,
            registry=r,
        )
        self.jobs_pending = Gauge(
            "jobs_pending",
            "Jobs waiting or in progress per task type (consumer pending + ack pending).",
            ["tenant", "task_type"],
            namespace=ns,
            registry=r,
        )
        self.incidents_total = Counter(
            "engine_incidents",
            "Incidents raised on instances, by kind (job, expression, ...).",
            ["tenant", "kind"],
            namespace=ns,
            registry=r,
        )
        # Trigger server.
        self.trigger_received_total = Counter(
            "trigger_messages_received",
            "Messages received by triggers.",
            ["tenant", "trigger"],
            namespace=ns,
            registry=r,
        )
        self.trigger_launched_total = Counter(
            "trigger_instances_launched",
            "Instances launched by triggers.",
            ["tenant", "trigger"],
            namespace=ns,
            registry=r,
        )
        self.trigger_duplicates_total = Counter(
            "trigger_duplicates",
            "Trigger messages dropped as duplicates (idempotency key seen).",
            ["tenant", "trigger"],
            namespace=ns,
            registry=r,
        )
        self.trigger_rejected_total = Counter(
            "trigger_messages_rejected",
            "Trigger messages dead-lettered, by reason (payload, mapping, too_large, gave_up).",
            ["tenant", "trigger", "reason"],
            namespace=ns,
            registry=r,
        )
        # Operator.
        self.autoscaler_decisions_total = Counter(
            "autoscaler_decisions",
            "Worker autoscaler decisions, by direction (up, down, hold, error).",
            ["tenant", "taskdefinition", "direction"],
            namespace=ns,
            registry=r,
        )

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)

    _TRIGGER_COUNTERS = ("received", "launched", "duplicates")

    def trigger_counted(self, tenant: str, trigger: str, field: str, n: int = 1) -> None:
        """A trigger counter of :class:`~natsflow_engine.triggers.stats.StatsBook` moved."""
        counter = {
            "received": self.trigger_received_total,
            "launched": self.trigger_launched_total,
            "duplicates": self.trigger_duplicates_total,
        }.get(field)
        if counter is not None:
            counter.labels(tenant, trigger).inc(n)

    def trigger_rejected(self, tenant: str, trigger: str, reason: str) -> None:
        """A trigger message was dead-lettered; ``reason`` is the dead letter's reason text."""
        kind = reason.split(":", 1)[0].strip()
        if kind.startswith("gave up"):
            kind = "gave_up"
        if kind not in ("payload", "mapping", "too_large", "gave_up"):
            kind = "other"
        self.trigger_rejected_total.labels(tenant, trigger, kind).inc()


# -- what the engine reports about its steps -----------------------------------------------

_step: contextvars.ContextVar[tuple[str, str, float] | None] = contextvars.ContextVar(
    "natsflow_step", default=None
)
"""(tenant, instance, start) of the command being applied in this task."""
_element: contextvars.ContextVar[str | None] = contextvars.ContextVar("natsflow_element", default=None)
"""The element the command being applied in this task concerns, once the engine knows it."""


def log_element(element_id: str | None) -> None:
    """Every line logged from now on while this command is applied carries ``element``."""
    _element.set(element_id)


class StepObserver:
    """The engine calls :meth:`begin` when it starts applying a command and :meth:`end` with the
    outcome (``applied``, ``unchanged``, ``duplicate``, ``conflict``, ``error``) and, when
    applied, the effects it publishes. This base sets the log context (every line logged in
    between carries the tenant and instance) and logs each incident raised with its element."""

    def begin(self, tenant: str, instance: str) -> None:
        _step.set((tenant, instance, time.perf_counter()))
        _element.set(None)

    def end(self, command: object, outcome: str, effects: list[Any] | None = None) -> None:
        current = _step.get()
        if current is None:
            return
        tenant, instance, started = current
        for event in _history_events(effects):
            if event.type == "incident-raised":
                data = event.data or {}
                log.warning(
                    "incident raised (%s): %s",
                    data.get("kind", "?"),
                    data.get("message", ""),
                    extra={"tenant": tenant, "instance": instance, "element": event.element_id},
                )
        self.observe(tenant, command_name(command), outcome, time.perf_counter() - started, effects)

    def observe(
        self, tenant: str, command: str, outcome: str, seconds: float, effects: list[Any] | None
    ) -> None:
        """Override to record a finished step (the base does nothing)."""


class MetricsObserver(StepObserver):
    """Feeds :class:`Metrics` from the engine's steps."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def observe(
        self, tenant: str, command: str, outcome: str, seconds: float, effects: list[Any] | None
    ) -> None:
        m = self.metrics
        m.steps_total.labels(tenant, command, outcome).inc()
        m.step_seconds.labels(command).observe(seconds)
        for event in _history_events(effects):
            if event.type == "incident-raised":
                kind = str((event.data or {}).get("kind", "other"))
                m.incidents_total.labels(tenant, kind).inc()
            elif event.type.startswith("instance-"):
                m.instances_total.labels(tenant, event.type.removeprefix("instance-")).inc()


def command_name(command: object) -> str:
    """The wire tag of a command (``launch``, ``job-completed``, ...), else its class name."""
    config = getattr(type(command), "__struct_config__", None)
    tag = getattr(config, "tag", None)
    return tag if isinstance(tag, str) else type(command).__name__


def _history_events(effects: list[Any] | None) -> list[HistoryEvent]:
    """The events of the history records among a step's effects."""
    found: list[HistoryEvent] = []
    for item in effects or ():
        if isinstance(item, HistoryRecord):
            found.extend(item.events)
    return found


# -- logging -------------------------------------------------------------------------------

CONTEXT_FIELDS = ("tenant", "instance", "element")
"""Record attributes copied into every log line when present (set with ``extra=`` or ContextAdapter)."""

_OWN_HANDLER = "_natsflow_handler"


def _context(record: logging.LogRecord) -> dict[str, Any]:
    fields = record.__dict__
    found = {k: fields[k] for k in CONTEXT_FIELDS if fields.get(k) is not None}
    step = _step.get()
    if step is not None:
        found.setdefault("tenant", step[0])
        found.setdefault("instance", step[1])
        if (element := _element.get()) is not None:
            found.setdefault("element", element)
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, tenant/instance/element, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_context(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger: message [tenant=... instance=... element=...]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = _context(record)
        if not ctx:
            return line
        first, nl, rest = line.partition("\n")  # keep tracebacks below the context
        suffix = " [" + " ".join(f"{k}={v}" for k, v in ctx.items()) + "]"
        return first + suffix + nl + rest


class ContextAdapter(logging.LoggerAdapter[logging.Logger]):
    """A LoggerAdapter whose ``extra`` (tenant, instance, element) merges with per-call ``extra=``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def configure_logging(
    format: Literal["text", "json"] | None = None,
    level: int | str | None = None,
    *,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Install one handler on the root logger (replacing the one a previous call installed).

    ``format`` and ``level`` default to ``NATSFLOW_LOG_FORMAT`` / ``NATSFLOW_LOG_LEVEL``, then
    ``text`` / ``INFO``. Returns the handler (tests read what it wrote through ``stream``).
    """
    fmt = (format or os.environ.get("NATSFLOW_LOG_FORMAT") or "text").strip().lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {fmt!r}")
    raw_level: int | str = level if level is not None else os.environ.get("NATSFLOW_LOG_LEVEL") or "INFO"
    if isinstance(raw_level, str):
        try:
            raw_level = logging.getLevelNamesMapping()[raw_level.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown log level {raw_level!r}") from None
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    setattr(handler, _OWN_HANDLER, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OWN_HANDLER, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(raw_level)
    return handler
