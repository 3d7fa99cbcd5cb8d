"""The load generator: launches instances and sees them complete through the history stream.

Two shapes: a *burst* publishes every launch as fast as JetStream takes them (throughput), a
*paced* run launches at a fixed rate on a schedule (latency at a given offered load; the launch
time is the scheduled time, so a slow system cannot hide its queueing). Completion is the
first index entry of an ended instance seen on a core subscription to
``$KV.nf_index.<tenant>.{completed,cancelled,failed}.>`` (one message per instance, written in
the final step with its history record), on a connection of its own so its traffic is not
counted as the instances' round trips. ``completion="history"`` watches every history record
instead (``nf.hist.<tenant>.>``: 2 messages per reference instance, 4.8 per order), for an
engine that writes no index.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats
from nats.aio.client import Client
from natsflow_engine import layout
from natsflow_engine.index import ENDED
from natsflow_engine.runtime import records as r

from bench.common import TENANT, Reservoir
from bench.workload import Workload


class _Hist(msgspec.Struct):
    instance: str
    step: int
    state: str


_hist = msgspec.json.Decoder(_Hist)


@dataclass
class RunResult:
    launched: int
    completed: int
    seconds: float
    s2c: Reservoir
    states: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "launched": self.launched,
            "completed": self.completed,
            "seconds": self.seconds,
            "rate": self.rate,
            "s2c_ms": self.s2c.summary_ms(),
        }


class LoadGenerator:
    def __init__(self, nc: Client, observer: Client, workload: Workload, *, prefix: str = "") -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=10)
        self.observer = observer
        self.workload = workload
        self.prefix = prefix or f"b{time.time_ns() % 10**9:x}"
        self._launched_at: dict[str, float] = {}
        self._done: set[str] = set()
        self._waiting: dict[str, float] = {}
        self._target = 0
        self._all_done = asyncio.Event()
        self._s2c = Reservoir()
        self._seq = 0

    @classmethod
    async def connect(cls, url: str, workload: Workload, *, completion: str = "index") -> LoadGenerator:
        servers = url.split(",")
        nc = await nats.connect(servers, reconnect_time_wait=0.2, max_reconnect_attempts=300)
        observer = await nats.connect(servers, reconnect_time_wait=0.2, max_reconnect_attempts=300)
        gen = cls(nc, observer, workload)
        if completion == "history":
            await observer.subscribe(
                f"nf.hist.{TENANT}.>", cb=gen._on_history, pending_msgs_limit=-1, pending_bytes_limit=-1
            )
        else:
            for bucket in ENDED:
                await observer.subscribe(
                    f"$KV.{layout.BUCKET_INDEX}.{TENANT}.{bucket}.>",
                    cb=gen._on_ended,
                    pending_msgs_limit=-1,
                    pending_bytes_limit=-1,
                )
        await observer.flush()
        return gen

    async def close(self) -> None:
        for client in (self.nc, self.observer):
            with contextlib.suppress(Exception):
                await client.close()

    async def _on_history(self, msg: Any) -> None:
        rec = _hist.decode(msg.data)
        if rec.state != "active":
            self._ended(rec.instance)

    async def _on_ended(self, msg: Any) -> None:
        if msg.data:  # not a purge marker: the entry of an ended instance (its id is the last token)
            self._ended(msg.subject.rpartition(".")[2])

    def _ended(self, instance: str) -> None:
        if instance in self._done:
            return
        started = self._launched_at.pop(instance, None)
        if started is None:
            return
        self._done.add(instance)
        self._s2c.add(time.perf_counter() - started)
        if len(self._done) >= self._target:
            self._all_done.set()

    def _next_launch(self, n: int) -> tuple[str, bytes]:
        self._seq += 1
        iid = f"{self.prefix}x{self._seq:07d}"
        cmd = r.Launch(
            id=f"launch.{iid}",
            tenant=TENANT,
            instance=iid,
            process_id=self.workload.process_id,
            variables=self.workload.variables(n),
        )
        return iid, r.encode(cmd)

    async def _launch(self, iid: str, data: bytes, at: float) -> None:
        self._launched_at[iid] = at
        for attempt in range(20):  # a launch is idempotent (message id), so retrying is safe
            try:
                await self.js.publish(
                    layout.command_subject(TENANT, iid), data, headers={"Nats-Msg-Id": f"launch.{iid}"}
                )
                return
            except Exception:
                await asyncio.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"launch of {iid} failed 20 times")

    def _begin(self, count: int) -> None:
        self._done.clear()
        self._s2c = Reservoir()
        self._target = count
        self._all_done.clear()

    async def _finish(self, count: int, start: float, timeout: float) -> RunResult:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_done.wait(), timeout)
        seconds = time.perf_counter() - start
        return RunResult(count, len(self._done), seconds, self._s2c)

    async def burst(self, count: int, *, window: int = 512, timeout: float = 300.0) -> RunResult:
        """Launch ``count`` instances with at most ``window`` launches awaiting their ack."""
        self._begin(count)
        start = time.perf_counter()
        pending: set[asyncio.Task[None]] = set()
        for n in range(count):
            if len(pending) >= window:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            iid, data = self._next_launch(n)
            pending.add(asyncio.create_task(self._launch(iid, data, time.perf_counter())))
        if pending:
            await asyncio.gather(*pending)
        return await self._finish(count, start, timeout)

    async def paced(self, count: int, rate: float, *, timeout: float = 300.0) -> RunResult:
        """Launch ``count`` instances at ``rate`` per second on a fixed schedule."""
        self._begin(count)
        start = time.perf_counter()
        pending: set[asyncio.Task[None]] = set()
        for n in range(count):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            iid, data = self._next_launch(n)
            task = asyncio.create_task(self._launch(iid, data, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        return await self._finish(count, start, timeout)
