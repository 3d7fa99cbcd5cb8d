"""Fault-test kit: a file-storage nats-server (or three-node cluster), engine replicas as
subprocesses (``python -m bench.node``), an in-process worker that records every job run, a
launcher that retries, and one verification of the whole run.

The verification reads what NATS kept, never what a subscriber happened to see:

* every instance record in ``nf_instances`` is ``completed`` (none stuck, none lost);
* the history stream holds exactly steps 1..n of each instance once (no duplicate step and no
  duplicate completion);
* every job (key = instance.element.attempt) ran exactly once per delivery attempt, and each
  instance got exactly the jobs its path needs;
* the command and job work queues are empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import nats
import pytest
from nats.aio.client import Client

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # the bench package lives at the repository root

from natsflow_engine import layout  # noqa: E402
from natsflow_engine.natsutil import list_keys  # noqa: E402
from natsflow_engine.runtime import records as r  # noqa: E402
from natsflow_engine.runtime.definitions import deploy_definitions  # noqa: E402
from natsflow_engine.runtime.setup import JobConsumerSettings, LayoutSettings, ensure_layout, open_buckets  # noqa: E402
from natsflow_engine.server import EmbeddedNatsServer  # noqa: E402
from natsflow_engine.worker import Job, Worker  # noqa: E402

from bench.common import REFERENCE_BPMN, NatsCluster, monitored_server, wait_jetstream  # noqa: E402
from bench.procs import NodeProcess  # noqa: E402

TENANT = "default"
_hist_decoder = msgspec.json.Decoder(r.HistoryRecord)


T = TypeVar("T")


async def settled(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, seconds: int = 60) -> T:
    """``read()`` again once a second, for up to ``seconds``, until ``done`` holds of what it
    returned; the last value read (the caller's assertions say what is wrong if it never did).
    After a cluster node restarts, a read served by that node can be short while it catches up."""
    value = await read()
    for _ in range(seconds):
        if done(value):
            break
        await asyncio.sleep(1.0)
        value = await read()
    return value


async def connect(url: str) -> Client:
    return await nats.connect(
        url.split(","), reconnect_time_wait=0.2, max_reconnect_attempts=600, connect_timeout=2
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    """A file-storage nats-server whose store survives stop()/start() (same port)."""
    srv, _ = monitored_server(store_dir=tmp_path / "js")
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def cluster() -> Iterator[NatsCluster]:
    c = NatsCluster(name="nffaults").start()
    try:
        yield c
    finally:
        c.close()


@dataclass
class Harness:
    """One fault scenario's clients, processes and bookkeeping. Close with :meth:`close`."""

    url: str
    settings: LayoutSettings
    log_dir: Path
    nc: Client | None = None
    nodes: list[NodeProcess] = field(default_factory=list)
    worker: Worker | None = None
    runs: Counter[tuple[str, int]] = field(default_factory=Counter)
    first_run: dict[str, float] = field(default_factory=dict)
    repeats: dict[str, float] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)

    async def connect(self) -> Client:
        """A new connection (reconnecting) to the scenario's server or cluster."""
        return await connect(self.url)

    async def setup(self) -> Harness:
        await wait_jetstream(self.url, self.settings.replicas)
        self.nc = await connect(self.url)
        self.js = self.nc.jetstream(timeout=10)
        await ensure_layout(self.js, self.settings, update=True)
        self.buckets = await open_buckets(self.js)
        await deploy_definitions(self.buckets[layout.BUCKET_WORKFLOWS], TENANT, REFERENCE_BPMN)
        return self

    def engine_args(self) -> list[str]:
        return [
            "--url", self.url, "--roles", "engine",
            "--replicas", str(self.settings.replicas), "--ack-wait", str(self.settings.command_ack_wait),
        ]  # fmt: skip

    async def start_engine(self, name: str) -> NodeProcess:
        node = await NodeProcess(name, self.engine_args(), log_dir=self.log_dir).start()
        self.nodes.append(node)
        return node

    async def start_worker(self, *, concurrency: int = 64, timeout: float = 30.0) -> Worker:
        """The in-process worker of task type ``check``; every run is recorded."""
        assert self.nc is not None
        self.worker = Worker(nc=await connect(self.url))
        runs, first, repeats = self.runs, self.first_run, self.repeats

        @self.worker.task("check", concurrency=concurrency, consumer=JobConsumerSettings(timeout=timeout))
        async def check(job: Job) -> dict[str, Any]:
            runs[(job.key, job.attempt)] += 1
            if job.key in first:
                repeats.setdefault(job.key, first[job.key])
            else:
                first[job.key] = time.monotonic()
            return {"checked": True}

        await self.worker.start()
        return self.worker

    async def launch(self, count: int, *, window: int = 256) -> None:
        """Launch ``count`` reference instances; each launch retries (it is idempotent)."""

        async def one(iid: str, n: int) -> None:
            data = r.encode(
                r.Launch(
                    id=f"launch.{iid}",
                    tenant=TENANT,
                    instance=iid,
                    process_id="reference",
                    variables={"amount": n},
                )
            )
            for attempt in range(60):
                try:
                    await self.js.publish(
                        layout.command_subject(TENANT, iid),
                        data,
                        headers={"Nats-Msg-Id": f"launch.{iid}"},
                        timeout=2,
                    )
                    return
                except Exception:
                    await asyncio.sleep(min(1.0, 0.1 * (attempt + 1)))
            raise AssertionError(f"launch of {iid} failed 60 times")

        prefix = f"f{time.time_ns() % 10**10:x}"
        batch = [f"{prefix}x{n:06d}" for n in range(count)]
        self.ids.extend(batch)
        for start in range(0, count, window):
            await asyncio.gather(
                *(one(iid, start + i) for i, iid in enumerate(batch[start : start + window]))
            )

    async def history_count(self) -> int:
        for _ in range(20):
            with contextlib.suppress(Exception):
                return (await self.js.stream_info(layout.STREAM_HISTORY)).state.messages
            await asyncio.sleep(0.25)
        raise AssertionError("history stream unavailable")

    async def wait_history(self, expected: int, timeout: float) -> None:
        """Until the history stream holds ``expected`` records (or fail, with the count)."""
        deadline = time.monotonic() + timeout
        count = 0
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                count = (await self.js.stream_info(layout.STREAM_HISTORY)).state.messages
                if count >= expected:
                    return
            await asyncio.sleep(0.25)
        raise AssertionError(f"only {count} of {expected} history records after {timeout}s: instances stuck")

    async def read_stream(self, subject: str) -> list[Any]:
        """Every message on ``subject`` (ordered consumer), bounded in time."""
        sub = await self.js.subscribe(subject, ordered_consumer=True)
        out = []
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=2.0)
                except (TimeoutError, nats.errors.TimeoutError):
                    break
                out.append(msg)
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        return out

    async def records(self, *, lenient: bool = False) -> dict[str, r.InstanceState]:
        """Every instance record (``lenient``: skip records that do not decode).

        Keys come from :func:`list_keys`, which knows where the listing ends; nats-py's KV
        watch may say "no more keys" before the last ones arrived, which once left a record
        out right after the history count was reached (a KeyError in the poison test)."""
        kv = self.buckets[layout.BUCKET_INSTANCES]
        keys = await list_keys(kv, f"{TENANT}.>")
        entries = await asyncio.gather(*(kv.get(key) for key in keys))
        states: dict[str, r.InstanceState] = {}
        for key, entry in zip(keys, entries, strict=True):
            try:
                states[key.split(".", 1)[1]] = r.decode_state(entry.value or b"")
            except msgspec.DecodeError:
                if not lenient:
                    raise
        return states

    async def verify(self, *, steps: int = 2, outage: tuple[float, float] | None = None) -> None:
        """The checks of the module docstring, for reference instances (``steps`` per instance).

        With ``outage`` (monotonic start and end of a server outage) a job may run again when
        its first run began before the outage ended: its acknowledgement or completion can be
        lost with the connection, and the server's consumer state may not have recorded the
        delivery (it then counts the redelivery as attempt 1 again). Its completion must
        still be applied once, which the history checks show."""
        # a listing is served by one peer of the bucket's stream, and a cluster node started
        # again serves its own copy while it catches up (seen: 1,280 of 3,000 keys listed right
        # after every history record had arrived); lost instances stay missing
        states = await settled(self.records, lambda states: all(i in states for i in self.ids))
        missing = [i for i in self.ids if i not in states]
        assert not missing, f"{len(missing)} instances never created, e.g. {missing[:3]}"
        stuck = [i for i in self.ids if states[i].state != "completed"]
        assert not stuck, f"{len(stuck)} instances not completed, e.g. {stuck[:3]}: {states[stuck[0]]}"
        expected = {(i, s) for i in self.ids for s in range(1, steps + 1)}
        # the same for the history: an ordered consumer on a node that is catching up reads that
        # node's copy (seen: 5 of 6,000 steps absent right after the leader counted them all);
        # records that were lost stay missing
        def every_step(history: list[Any]) -> bool:
            return expected <= {(h.instance, h.step) for h in (_hist_decoder.decode(m.data) for m in history)}

        history = await settled(lambda: self.read_stream(f"nf.hist.{TENANT}.>"), every_step)
        per_step: Counter[tuple[str, int]] = Counter()
        completions: Counter[str] = Counter()
        jobs_created: dict[str, list[str]] = defaultdict(list)
        for msg in history:
            rec = _hist_decoder.decode(msg.data)
            per_step[(rec.instance, rec.step)] += 1
            if rec.state == "completed":
                completions[rec.instance] += 1
            for ev in rec.events:
                if ev.type == "job-created" and ev.data:
                    jobs_created[rec.instance].append(ev.data["job"])
        dup_steps = {k: v for k, v in per_step.items() if v > 1}
        assert not dup_steps, f"duplicate history steps: {list(dup_steps.items())[:5]}"
        assert set(per_step) == expected, (
            f"history steps differ: missing {list(expected - set(per_step))[:5]}"
        )
        assert all(completions[i] == 1 for i in self.ids), "an instance completed more than once or never"
        if outage is None:
            twice = {k: v for k, v in self.runs.items() if v > 1}
            assert not twice, f"jobs ran more than once in one delivery attempt: {list(twice.items())[:5]}"
            assert not self.repeats, f"jobs ran again: {list(self.repeats)[:5]}"
        else:
            late = {k: t for k, t in self.repeats.items() if t > outage[1]}
            assert not late, f"jobs first run after the outage ran again: {list(late)[:5]}"
        ran = {key for key, _ in self.runs}
        wanted = {job for i in self.ids for job in jobs_created[i]}
        assert all(len(jobs_created[i]) == 1 for i in self.ids), "an instance created more than one job"
        assert ran == wanted, (
            f"jobs created but never run: {list(wanted - ran)[:5]}; run but not created: {list(ran - wanted)[:5]}"
        )
        for stream, consumer in (
            (layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER),
            (layout.STREAM_JOBS, layout.job_consumer("default", "check")),
        ):
            info = await settled(  # an acknowledgement lost in the outage: redelivered after the ack wait
                lambda: self.js.consumer_info(stream, consumer),  # noqa: B023 (awaited in this iteration)
                lambda info: info.num_pending == 0 and info.num_ack_pending == 0,
            )
            assert info.num_pending == 0 and info.num_ack_pending == 0, f"{stream} not drained: {info}"

    async def close(self) -> None:
        if self.worker is not None:
            with contextlib.suppress(Exception):
                await self.worker.stop(timeout=2.0)
            if self.worker.nc is not None:
                with contextlib.suppress(Exception):
                    await self.worker.nc.close()
        for node in self.nodes:
            with contextlib.suppress(Exception):
                await node.stop(timeout=5.0)
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()


@pytest.fixture
async def harness_factory(tmp_path: Path) -> AsyncIterator[Any]:
    made: list[Harness] = []

    async def make(url: str, settings: LayoutSettings) -> Harness:
        h = Harness(url, settings, tmp_path)
        made.append(h)
        return await h.setup()

    try:
        yield make
    finally:
        for h in made:
            await h.close()
