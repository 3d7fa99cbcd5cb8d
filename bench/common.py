"""Shared pieces of the benchmarks and fault tests: message counting, percentiles, servers.

Counting is done, not guessed: :func:`install_counters` wraps nats-py's ``Client.publish`` in the
current process, so every message a bench process sends is tallied by kind (a request/reply
round trip is a publish with a reply subject; acks and pull requests are one-way). The server's own ``/varz``
counters are read through its monitoring port as a cross-check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import socket
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.js.api import StorageType, StreamConfig
from natsflow_engine.server import EmbeddedNatsServer

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_BPMN = ROOT / "tests" / "engine" / "models" / "reference.bpmn"
ORDER_BPMN = ROOT / "examples" / "order-fulfilment" / "order-fulfilment.bpmn"
ORDER_WORKERS = ROOT / "examples" / "order-fulfilment" / "workers.py"
SPIFF_BPMN = Path(__file__).resolve().parent / "models" / "reference-spiff.bpmn"
TENANT = "default"

# --- counting ---------------------------------------------------------------------------------

SENT: Counter[str] = Counter()
"""Messages sent by this process, by kind (requests are also counted as ``req:<kind>``)."""


def classify(subject: str) -> str:
    if subject.startswith("$JS.ACK."):
        return "ack"
    if subject.startswith("$JS.API.CONSUMER.MSG.N"):
        return "pull"
    if subject.startswith("$JS.API.DIRECT.GET."):
        return "kv-get"
    if subject.startswith("$KV."):
        return "kv-write"
    if subject.startswith(("nf.cmd.", "l.cmd.")):
        return "cmd"
    if subject.startswith(("nf.job.", "l.job.")):
        return "job"
    if subject.startswith(("nf.hist.", "l.hist.")):
        return "history"
    if subject.startswith("$JS.API."):
        parts = subject.split(".")
        return "js-api:" + ".".join(parts[2:4] if parts[2] == "STREAM" else parts[2:3])
    return "other"


_installed = False


def install_counters() -> None:
    """Count every message nats-py publishes in this process (requests included: they are
    publishes with a reply subject). Kept cheap: the kind is worked out when reading."""
    global _installed
    if _installed:
        return
    _installed = True
    from nats.aio.client import Client
    from natsflow_engine import publisher

    publish = Client.publish

    async def counted_publish(
        self: Client, subject: str, payload: bytes = b"", reply: str = "", headers: Any = None
    ) -> None:
        SENT[subject[:22] + ("?" if reply else "")] += 1
        await publish(self, subject, payload, reply, headers)

    Client.publish = counted_publish  # type: ignore[method-assign]

    def counted_framed(subject: str, with_reply: bool) -> None:
        SENT[subject[:22] + ("?" if with_reply else "")] += 1

    publisher.set_observer(counted_framed)  # the messages the engine's publisher frames itself


def counts() -> dict[str, int]:
    """Messages sent since the last reset, by kind; ``req:<kind>`` also counts the requests
    (request/reply round trips) among them."""
    out: Counter[str] = Counter()
    for key, n in SENT.items():
        kind = classify(key.rstrip("?"))
        out[kind] += n
        if key.endswith("?") and kind != "pull":
            out["req:" + kind] += n
    return dict(out)


def reset_counts() -> None:
    SENT.clear()


# --- statistics -------------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN for no samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Reservoir:
    """Latency samples in seconds: all of them up to ``limit``, then a uniform random sample of
    that size (reservoir sampling), so a soak's memory stays bounded."""

    limit: int = 200_000
    samples: list[float] = field(default_factory=list)
    seen: int = 0

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.samples) < self.limit:
            self.samples.append(value)
        else:
            slot = random.randrange(self.seen)
            if slot < self.limit:
                self.samples[slot] = value

    def summary_ms(self) -> dict[str, float]:
        return {
            "n": self.seen,
            "p50": percentile(self.samples, 50) * 1e3,
            "p99": percentile(self.samples, 99) * 1e3,
        }


# --- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def monitored_server(
    store_dir: Path | None = None, port: int | None = None
) -> tuple[EmbeddedNatsServer, int]:
    """A file-storage nats-server on loopback with its monitoring port open."""
    http = free_port()
    server = EmbeddedNatsServer(port=port, store_dir=store_dir, extra_args=["-m", str(http)])
    return server, http


def varz(http_port: int, endpoint: str = "varz") -> dict[str, Any]:
    """A monitoring endpoint of nats-server (``varz``, ``jsz?streams=true``, ...) as JSON."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/{endpoint}", timeout=5) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


class NatsCluster:
    """Three nats-servers with JetStream, routed to each other on loopback, file storage.

    Each node keeps its client port, cluster port and store across :meth:`kill_node` /
    :meth:`start_node`, so a node brought back rejoins with its data.
    """

    def __init__(self, size: int = 3, name: str = "nfbench") -> None:
        self.base = Path(tempfile.mkdtemp(prefix="natsflow-cluster-"))
        self.ports = [free_port() for _ in range(size)]
        self.cluster_ports = [free_port() for _ in range(size)]
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.cluster_ports)
        self.nodes = [self._node(i, name, routes) for i in range(size)]

    def _node(self, i: int, name: str, routes: str) -> EmbeddedNatsServer:
        args = ["--server_name", f"n{i}", "--cluster_name", name]
        args += ["--cluster", f"nats://127.0.0.1:{self.cluster_ports[i]}", "--routes", routes]
        return EmbeddedNatsServer(port=self.ports[i], store_dir=self.base / f"n{i}", extra_args=args)

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.ports]

    @property
    def url(self) -> str:
        return ",".join(self.urls)

    def pids(self) -> list[int]:
        return [n.pid for n in self.nodes if n.pid is not None]

    def start(self) -> NatsCluster:
        for node in self.nodes:
            node.start()
        return self

    def kill_node(self, i: int) -> None:
        self.nodes[i].kill()

    def start_node(self, i: int) -> None:
        self.nodes[i].start()

    def close(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop(timeout=5)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


async def wait_jetstream(urls: str, replicas: int, timeout: float = 30.0) -> None:
    """Wait until JetStream answers and, on a cluster, a stream of ``replicas`` can be placed."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        nc = None
        try:
            nc = await nats.connect(urls.split(","), connect_timeout=2, max_reconnect_attempts=1)
            js = nc.jetstream(timeout=5)
            await js.account_info()
            if replicas > 1:
                probe = StreamConfig(
                    name="NF_PROBE", subjects=["nf.probe"], num_replicas=replicas, storage=StorageType.FILE
                )
                await js.add_stream(probe)
                await js.delete_stream("NF_PROBE")
            return
        except Exception as exc:
            last = exc
            await asyncio.sleep(0.5)
        finally:
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()
    raise TimeoutError(f"JetStream not ready within {timeout}s: {last!r}")


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - start
