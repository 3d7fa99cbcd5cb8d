"""The physical limit: the least JetStream work one reference instance needs, in bare nats-py.

Per instance, pipelined across instances, in one process (like the one-process natsflow mode)
on the same file-storage server, with records of natsflow's sizes and message ids on every
publish (JetStream de-duplication is part of exactly-once)::

    launcher  publish launch ─────────────────────────────► L_CMD (work queue)
    engine    pull launch → KV create record → publish job + publish history → ack
    worker    pull job → publish completion ─────────────► L_CMD            → ack
    engine    pull completion → KV update(last=rev) → publish history → ack

No interpreter, no decoding beyond a type byte, no outbox: what is left is the JetStream round
trips a durable engine cannot avoid. ``python -m bench.limit --url URL --instances N`` prints one
JSON line.

``--variant`` measures layouts the engine could have, with an instance index as natsflow keeps
one (an entry per instance, moved from ``active`` to ``completed`` at the end); the default,
``bare``, is the limit itself and never changes:

* ``index``: the index in a bucket of its own, as natsflow writes it today: the entry put with
  the launch step's effects, and at the end a purge of the active entry and the completed entry,
  each acknowledged (10 round trips);
* ``atomic``: the index keys in the instance bucket's stream (``allow_atomic``), each step's
  record write and index writes one atomic batch (nats-server >= 2.12): only the batch's last
  message asks for an acknowledgement, and the record's compare-and-set
  (``Nats-Expected-Last-Subject-Sequence``) decides for the whole batch (7 round trips and 3
  one-way messages).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

if __package__ in (None, ""):  # pragma: no cover - run as a file
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, RetentionPolicy, StreamConfig

from bench import common
from bench.common import Reservoir

RECORD = b"r" * 1280  # natsflow's instance record after the first step is ~1.3 kB
JOB = b"j" * 260
HISTORY = b"h" * 550


class RawPull:
    """A minimal continuous pull: keep up to ``inflight`` messages in hand, ask for more in
    batches as handlers finish (what natsflow's PullLoop does, without its bookkeeping)."""

    def __init__(
        self, nc: Client, stream: str, consumer: str, handler: Callable[[Msg], Awaitable[None]]
    ) -> None:
        self.nc, self.handler = nc, handler
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.inflight = 0
        self.owed = 0
        self.limit, self.batch = 2048, 256
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.inbox = self.nc.new_inbox()
        self.sub = await self.nc.subscribe(
            self.inbox, cb=self.on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        self.pump = asyncio.create_task(self.run())

    async def on_msg(self, msg: Msg) -> None:
        if not msg.data and msg.headers and "Status" in msg.headers:
            self.owed = 0  # request expired or ended: ask again
            self.wake.set()
            return
        self.owed -= 1
        self.inflight += 1
        task = asyncio.create_task(self.handle(msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def handle(self, msg: Msg) -> None:
        try:
            await self.handler(msg)
        finally:
            self.inflight -= 1
            self.wake.set()

    async def run(self) -> None:
        while True:
            room = self.limit - self.inflight - self.owed
            if room >= self.batch or self.owed <= 0:
                ask = max(1, min(room, self.batch))
                self.owed += ask
                await self.nc.publish(
                    self.subject, json.dumps({"batch": ask, "expires": 10**9}).encode(), reply=self.inbox
                )
                continue
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), 0.5)
            except TimeoutError:
                self.owed = 0

    async def stop(self) -> None:
        self.pump.cancel()
        await self.sub.unsubscribe()


VARIANTS = ("bare", "index", "atomic")
ENTRY = b"e" * 300  # an index entry of an active instance


class Batch:
    """Atomic batches on one connection: every message but the last one-way; at most
    ``inflight`` at once (nats-server's default ``max_inflight_per_stream`` is 50; with 600
    batches in flight none of the commits was answered within 10 s here)."""

    def __init__(self, nc: Client, inflight: int = 48) -> None:
        self.nc = nc
        self.n = 0
        self.room = asyncio.Semaphore(inflight)

    async def commit(self, messages: list[tuple[str, bytes, dict[str, str]]]) -> int:
        """Publish ``messages`` as one batch; the stream sequence of the last one."""
        async with self.room:
            return await self._commit(messages)

    async def _commit(self, messages: list[tuple[str, bytes, dict[str, str]]]) -> int:
        self.n += 1
        batch = f"b{self.n}"
        last = len(messages)
        for seq, (subject, data, headers) in enumerate(messages, 1):
            headers = {**headers, "Nats-Batch-Id": batch, "Nats-Batch-Sequence": str(seq)}
            if seq < last:
                await self.nc.publish(subject, data, headers=headers)
                continue
            headers["Nats-Batch-Commit"] = "1"
            reply = await self.nc.request(subject, data, timeout=10, headers=headers)
            ack = json.loads(reply.data)
            if "error" in ack:
                raise RuntimeError(ack["error"])
            return int(ack["seq"])
        raise ValueError("an empty batch")


def _purge(subject: str) -> tuple[str, bytes, dict[str, str]]:
    return subject, b"", {"KV-Operation": "PURGE", "Nats-Rollup": "sub", "Nats-TTL": "1"}


async def run(url: str, count: int, replicas: int = 1, variant: str = "bare") -> dict[str, object]:
    common.install_counters()
    servers = url.split(",")
    engine_nc, worker_nc, launch_nc = [await nats.connect(servers) for _ in range(3)]
    js = engine_nc.jetstream(timeout=10)
    for name, subjects, retention in (
        ("L_CMD", ["l.cmd.>"], RetentionPolicy.WORK_QUEUE),
        ("L_JOBS", ["l.job.>"], RetentionPolicy.WORK_QUEUE),
        ("L_HIST", ["l.hist.>"], RetentionPolicy.LIMITS),
    ):
        await js.add_stream(
            StreamConfig(name=name, subjects=subjects, retention=retention, num_replicas=replicas)
        )
    kv = await js.create_key_value(KeyValueConfig(bucket="l_inst", history=1, replicas=replicas))
    if variant == "index":
        await js.create_key_value(KeyValueConfig(bucket="l_index", history=1, replicas=replicas))
    if variant == "atomic":
        config = (await js.stream_info("KV_l_inst")).config
        config.allow_atomic = True
        await js.update_stream(config)
    batches = Batch(engine_nc)
    for stream in ("L_CMD", "L_JOBS"):
        await js.add_consumer(
            stream, ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=20_000)
        )
    revs: dict[str, int] = {}
    started: dict[str, float] = {}
    s2c = Reservoir()
    done = asyncio.Event()
    completed = 0
    wjs = worker_nc.jetstream(timeout=10)
    ljs = launch_nc.jetstream(timeout=10)

    async def engine(msg: Msg) -> None:
        nonlocal completed
        iid = msg.subject[6:]
        launch = msg.data[:1] == b"L"
        active, ended = f"ix.active.{iid}", f"ix.completed.{iid}"
        if variant == "atomic":  # the record (last: its sequence is the ack's) and its index entry
            record = (f"$KV.l_inst.{iid}", RECORD, {"Nats-Expected-Last-Subject-Sequence": str(revs.pop(iid, 0))})
            entries = [(f"$KV.l_inst.{active}", ENTRY, {})] if launch else [
                _purge(f"$KV.l_inst.{active}"), (f"$KV.l_inst.{ended}", ENTRY, {})
            ]
            seq = await batches.commit([*entries, record])
            if launch:
                revs[iid] = seq
        index: list[Awaitable[object]] = []
        if variant == "index":
            if launch:
                index = [js.publish(f"$KV.l_index.{active}", ENTRY)]
            else:
                purge = _purge(f"$KV.l_index.{active}")
                index = [js.publish(purge[0], purge[1], headers=purge[2]), js.publish(f"$KV.l_index.{ended}", ENTRY)]
        if launch:
            if variant != "atomic":
                revs[iid] = await kv.create(iid, RECORD)
            await asyncio.gather(
                js.publish(f"l.job.{iid}", JOB, headers={"Nats-Msg-Id": f"{iid}.j"}),
                js.publish(f"l.hist.{iid}", HISTORY, headers={"Nats-Msg-Id": f"{iid}.h1"}),
                *index,
            )
        else:
            if variant != "atomic":
                await kv.update(iid, RECORD, last=revs.pop(iid))
            history = js.publish(f"l.hist.{iid}", HISTORY, headers={"Nats-Msg-Id": f"{iid}.h2"})
            await (asyncio.gather(history, *index) if index else history)
            s2c.add(time.perf_counter() - started.pop(iid))
            completed += 1
            if completed == count:
                done.set()
        await msg.ack()

    async def worker(msg: Msg) -> None:
        iid = msg.subject[6:]
        await wjs.publish(f"l.cmd.{iid}", b"D" + JOB, headers={"Nats-Msg-Id": f"{iid}.d"})
        await msg.ack()

    pulls = [RawPull(engine_nc, "L_CMD", "c", engine), RawPull(worker_nc, "L_JOBS", "c", worker)]
    for p in pulls:
        await p.start()
    common.reset_counts()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    begin = time.perf_counter()
    pending: set[asyncio.Task[object]] = set()
    for n in range(count):
        if len(pending) >= 512:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        iid = f"i{n}"
        started[iid] = time.perf_counter()
        pending.add(
            asyncio.create_task(ljs.publish(f"l.cmd.{iid}", b"L" + JOB, headers={"Nats-Msg-Id": f"{iid}.l"}))
        )
    await asyncio.gather(*pending)
    await asyncio.wait_for(done.wait(), timeout=max(60.0, count / 100))
    seconds = time.perf_counter() - begin
    sent = common.counts()
    for p in pulls:
        await p.stop()
    for nc in (engine_nc, worker_nc, launch_nc):
        await nc.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "completed": completed,
        "seconds": seconds,
        "rate": completed / seconds,
        "s2c_ms": s2c.summary_ms(),
        "sent": sent,
        "cpu_s": usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime,
        "maxrss_kb": usage.ru_maxrss,
    }


def main() -> None:
    p = argparse.ArgumentParser(description="the bare JetStream limit for the reference process")
    p.add_argument("--url", required=True)
    p.add_argument("--instances", type=int, default=10_000)
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--variant", choices=VARIANTS, default="bare", help="see the module docstring")
    args = p.parse_args()
    import uvloop

    result = uvloop.run(run(args.url, args.instances, args.replicas, args.variant))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
