"""engine/observability.py for real: a HealthServer on a free port, real HTTP requests, real log lines."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator

import pytest
from natsflow_engine.observability import (
    DEFAULT_HEALTH_PORT,
    ContextAdapter,
    HealthServer,
    Metrics,
    configure_logging,
    health_port_from_env,
)
from prometheus_client import REGISTRY, CollectorRegistry


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes), parse status, headers, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split(" ")[1]), headers, body


async def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    return await request(port, f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def server(metrics: Metrics) -> AsyncIterator[HealthServer]:
    async with HealthServer("127.0.0.1", 0, registry=metrics.registry, check_timeout=0.2) as srv:
        yield srv


async def test_binds_a_free_port_and_answers_healthz(server: HealthServer) -> None:
    assert server.started and server.port not in (0, DEFAULT_HEALTH_PORT)
    status, headers, body = await get(server.port, "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["Content-Length"] == "3" and headers["Connection"] == "close"


async def test_urllib_client_in_a_thread(server: HealthServer) -> None:
    def fetch() -> tuple[int, bytes]:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz?verbose=1", timeout=5) as resp:
            return resp.status, resp.read()

    assert await asyncio.to_thread(fetch) == (200, b"ok\n")


async def test_head_unknown_path_and_wrong_method(server: HealthServer) -> None:
    status, headers, body = await get(server.port, "/healthz", method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", "3")
    assert (await get(server.port, "/nope"))[0] == 404
    status, headers, _ = await get(server.port, "/healthz", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"


async def test_malformed_and_oversized_requests(server: HealthServer) -> None:
    assert (await request(server.port, b"garbage\r\n\r\n"))[0] == 400
    huge = b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    assert (await request(server.port, huge))[0] == 431
    # The server keeps serving after bad clients.
    assert (await get(server.port, "/healthz"))[0] == 200


async def test_readyz_follows_the_registered_checks(server: HealthServer) -> None:
    assert (await get(server.port, "/readyz"))[0] == 200  # no checks: ready

    state = {"nats": False}

    async def nats_ok() -> bool:
        return state["nats"]

    async def kv_ok() -> bool:
        return True

    server.add_check("nats", nats_ok)
    server.add_check("kv", kv_ok)
    status, _, body = await get(server.port, "/readyz")
    assert status == 503
    assert body.decode().splitlines() == ["[-]nats failed", "[+]kv ok", "not ready"]

    state["nats"] = True
    status, _, body = await get(server.port, "/readyz")
    assert status == 200 and body.decode().endswith("ready\n") and "[-]" not in body.decode()

    with pytest.raises(ValueError, match="already registered"):
        server.add_check("nats", nats_ok)
    with pytest.raises(ValueError, match="without spaces"):
        server.add_check("two words", nats_ok)


async def test_readyz_counts_errors_and_slow_checks_as_not_ready(server: HealthServer) -> None:
    never = asyncio.Event()

    async def broken() -> bool:
        raise ConnectionRefusedError("nats down")

    async def hangs() -> bool:
        await never.wait()
        return True

    server.add_check("broken", broken)
    server.add_check("slow", hangs)
    started = time.monotonic()
    status, _, body = await get(server.port, "/readyz")
    assert time.monotonic() - started < 2  # bounded by check_timeout=0.2, run concurrently
    assert status == 503
    text = body.decode()
    assert "[-]broken ConnectionRefusedError: nats down" in text
    assert "[-]slow timed out after 0.2s" in text

    server.remove_check("broken")
    server.remove_check("slow")
    assert (await get(server.port, "/readyz"))[0] == 200


async def test_metrics_endpoint_serves_the_registry(server: HealthServer, metrics: Metrics) -> None:
    m = metrics
    m.steps_total.labels(tenant="acme", command="launch", outcome="applied").inc()
    m.step_seconds.labels(command="launch").observe(0.003)
    m.instances_total.labels(tenant="acme", event="started").inc(7)
    m.jobs_pending.labels(tenant="acme", task_type="charge").set(3)
    m.incidents_total.labels(tenant="acme", kind="job").inc()
    m.trigger_received_total.labels(tenant="acme", trigger="orders").inc(2)
    m.trigger_launched_total.labels(tenant="acme", trigger="orders").inc()
    m.trigger_duplicates_total.labels(tenant="acme", trigger="orders").inc()
    m.trigger_rejected_total.labels(tenant="acme", trigger="orders", reason="payload").inc()
    m.autoscaler_decisions_total.labels(tenant="acme", taskdefinition="charge", direction="up").inc()

    status, headers, body = await get(server.port, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    text = body.decode()
    for line in [
        'natsflow_engine_steps_total{command="launch",outcome="applied",tenant="acme"} 1.0',
        'natsflow_engine_step_seconds_bucket{command="launch",le="0.005"} 1.0',
        'natsflow_engine_instances_total{event="started",tenant="acme"} 7.0',
        'natsflow_jobs_pending{task_type="charge",tenant="acme"} 3.0',
        'natsflow_engine_incidents_total{kind="job",tenant="acme"} 1.0',
        'natsflow_trigger_messages_received_total{tenant="acme",trigger="orders"} 2.0',
        'natsflow_trigger_instances_launched_total{tenant="acme",trigger="orders"} 1.0',
        'natsflow_trigger_duplicates_total{tenant="acme",trigger="orders"} 1.0',
        'natsflow_trigger_messages_rejected_total{reason="payload",tenant="acme",trigger="orders"} 1.0',
        'natsflow_autoscaler_decisions_total{direction="up",taskdefinition="charge",tenant="acme"} 1.0',
    ]:
        assert line in text.splitlines(), line
    assert text == m.exposition().decode()


def test_metrics_use_their_own_registry() -> None:
    a, b = Metrics(), Metrics()  # a global registry would raise "Duplicated timeseries"
    a.steps_total.labels(tenant="t", command="launch", outcome="applied").inc()
    assert b'tenant="t"' not in b.exposition()
    assert REGISTRY.get_sample_value("natsflow_engine_steps_total", {}) is None
    shared = CollectorRegistry()
    Metrics(shared)
    assert shared.get_sample_value("natsflow_jobs_pending", {"tenant": "x", "task_type": "y"}) is None
    assert "natsflow_jobs_pending" in {m.name for m in shared.collect()}


async def test_metrics_without_registry_is_404() -> None:
    async with HealthServer("127.0.0.1", 0) as srv:
        assert (await get(srv.port, "/metrics"))[0] == 404
        assert (await get(srv.port, "/healthz"))[0] == 200


async def test_slow_client_times_out_and_stop_cancels_hanging_connections() -> None:
    srv = HealthServer("127.0.0.1", 0, request_timeout=0.2)
    await srv.start()
    status, _, body = await request(srv.port, b"GET /healthz HTTP/1.1\r\n")  # head never ends
    assert status == 408 and body == b"request timeout\n"

    srv.request_timeout = 30  # a client that never finishes its request must not block stop()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    await writer.drain()
    for _ in range(200):  # until the server has accepted it and is waiting for the rest
        if srv._connections:
            break
        await asyncio.sleep(0.005)
    assert srv._connections
    started = time.monotonic()
    await srv.stop()
    assert time.monotonic() - started < 5
    assert not srv.started
    try:  # the server closed the connection without answering (EOF or reset)
        leftover = await asyncio.wait_for(reader.read(), timeout=5)
    except ConnectionResetError:
        leftover = b""
    assert leftover == b""
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", srv.port)
    await srv.stop()  # idempotent


def test_health_port_from_env() -> None:
    assert health_port_from_env({}) == DEFAULT_HEALTH_PORT
    assert health_port_from_env({"NATSFLOW_HEALTH_PORT": "9090"}) == 9090
    with pytest.raises(ValueError, match="port number"):
        health_port_from_env({"NATSFLOW_HEALTH_PORT": "http"})
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        health_port_from_env({"NATSFLOW_HEALTH_PORT": "70000"})


# -- logging ---------------------------------------------------------------------------------


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_logs_carry_tenant_instance_element(root_logger: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging("json", "DEBUG", stream=out)
    logger = logging.getLogger("natsflow.test.obs")
    adapter = logging.LoggerAdapter(logger, {"tenant": "acme", "instance": "i-1", "element": "Task_1"})
    adapter.info("stepped %s tokens", 3)
    logger.debug("plain")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        ContextAdapter(logger, {"tenant": "acme"}).exception("failed", extra={"element": "Gw_2"})

    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "stepped 3 tokens" and first["level"] == "info"
    assert first["logger"] == "natsflow.test.obs"
    assert (first["tenant"], first["instance"], first["element"]) == ("acme", "i-1", "Task_1")
    assert first["ts"].endswith("+00:00")
    assert second["message"] == "plain" and not {"tenant", "instance", "element"} & second.keys()
    assert third["tenant"] == "acme" and third["element"] == "Gw_2" and "instance" not in third
    assert "RuntimeError: boom" in third["exc"]


def test_text_logs_and_levels(root_logger: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging("text", "warning", stream=out)
    logger = logging.getLogger("natsflow.test.obs")
    logger.info("hidden")
    ContextAdapter(logger, {"tenant": "acme", "instance": "i-9"}).warning("slow step")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert "WARNING" in lines[0] and "natsflow.test.obs: slow step [tenant=acme instance=i-9]" in lines[0]


def test_configure_logging_replaces_its_own_handler_and_reads_env(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    foreign = logging.NullHandler()
    root_logger.addHandler(foreign)
    configure_logging("text", stream=io.StringIO())
    monkeypatch.setenv("NATSFLOW_LOG_FORMAT", "json")
    monkeypatch.setenv("NATSFLOW_LOG_LEVEL", "error")
    out = io.StringIO()
    handler = configure_logging(stream=out)
    ours = [h for h in root_logger.handlers if getattr(h, "_natsflow_handler", False)]
    assert ours == [handler] and foreign in root_logger.handlers
    assert root_logger.level == logging.ERROR
    logging.getLogger("natsflow.test.obs").error("x")
    assert json.loads(out.getvalue())["message"] == "x"

    with pytest.raises(ValueError, match="'text' or 'json'"):
        configure_logging("xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("json", "loud")
