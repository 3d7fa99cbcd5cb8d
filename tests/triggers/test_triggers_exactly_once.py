"""1,000 trigger messages with 300 duplicates -> exactly 700 instances: with one replica (exact
counters), and with three replicas of which one hangs after publishing launches and one is
SIGKILLed mid-stream."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from natsflow_engine import catalog, layout
from natsflow_engine.triggers.server import TriggerServer, TriggerSettings
from natsflow_engine.triggers.stats import decode_stats
from trigger_kit import SIMPLE, deploy, instance_count, put_trigger, running_engine, wait_for, watchdog

UNIQUE_KEYS = 700
FAST = TriggerSettings(stats_interval=0.2, shutdown_timeout=0.1)


async def _setup(nc: Client, unique: str) -> tuple[str, str, str]:
    """A source stream with a 0.5 s duplicate window, the trigger's consumer (2 s ack wait) and
    the trigger definition (idempotency key from the ``Order-Id`` header)."""
    tenant, js = unique, nc.jetstream()
    await deploy(nc, tenant, SIMPLE.format(pid="pay"))
    subject, stream = f"src.{unique}.payments", f"SRC_{unique}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"src.{unique}.>"], duplicate_window=0.5))
    consumer = catalog.trigger_consumer(tenant, "pay")
    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name=consumer,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=2.0,
            max_deliver=10,
            max_ack_pending=1000,
        ),
    )
    await put_trigger(
        nc,
        catalog.TriggerRecord(
            tenant=tenant,
            name="pay",
            subject=subject,
            stream=stream,
            consumer=consumer,
            process_id="pay",
            variables={"n": "payload.n"},
            idempotency_header="Order-Id",
            max_deliver=10,
        ),
    )
    return subject, stream, consumer


async def _publish_1000(nc: Client, subject: str, halfway: Callable[[], Awaitable[None]]) -> None:
    """700 originals, 100 producer retries inside the window (the stream drops them), 100 resends
    of a business id under a new message id, 100 resends of a message id after the window.
    Publishes are pipelined (in order on the connection), so a slow disk only slows the acks."""
    js = nc.jetstream()

    async def send(batch: list[tuple[int, str]]) -> list[bool]:
        futures = [
            await js.publish_async(
                subject, json.dumps({"n": n}).encode(), headers={"Nats-Msg-Id": msg_id, "Order-Id": f"k{n}"}
            )
            for n, msg_id in batch
        ]
        return [bool((await f).duplicate) for f in futures]

    loop = asyncio.get_running_loop()
    await send([(n, f"m{n}") for n in range(100)])
    window_passed = loop.time() + 0.6
    # the producer retries at once: the same message id inside the window is dropped by the stream
    acks = await send([(n, f"m{n}") for n in range(100, 200) for _ in range(2)])
    assert acks == [False, True] * 100
    await send([(n, f"m{n}") for n in range(200, 400)])
    await halfway()
    await send([(n, f"m{n}") for n in range(400, UNIQUE_KEYS)])
    await send([(n, f"again-{n}") for n in range(200, 300)])
    await asyncio.sleep(max(0.0, window_passed - loop.time()))
    assert not any(await send([(n, f"m{n}") for n in range(100)]))  # the window is over: kept


async def _drained(nc: Client, stream: str, consumer: str) -> Any:
    info = await nc.jetstream().consumer_info(stream, consumer)
    return info if info.num_pending == 0 and info.num_ack_pending == 0 else None


async def _exactly(nc: Client, tenant: str, expected: int) -> None:
    """Wait until the engine created ``expected`` instances and has no command left; check again."""

    async def reached() -> bool:
        return await instance_count(nc, tenant) >= expected

    await wait_for(reached, timeout=20)
    await wait_for(lambda: _drained(nc, layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER), timeout=20)
    assert await instance_count(nc, tenant) == expected


async def test_one_replica_counts_exactly(nc: Client, unique: str) -> None:
    subject, stream, consumer = await _setup(nc, unique)
    started = time.perf_counter()
    async with running_engine(nc), TriggerServer(nc, FAST) as server:
        await server.wait_ready(unique, "pay")

        async def nothing() -> None:
            pass

        await _publish_1000(nc, subject, nothing)
        await wait_for(lambda: _drained(nc, stream, consumer))
        await _exactly(nc, unique, UNIQUE_KEYS)
        elapsed = time.perf_counter() - started
    kv = await nc.jetstream().key_value("nf_trigger_stats")
    stats = decode_stats((await kv.get(layout.trigger_key(unique, "pay"))).value)
    # the 100 producer retries never reach the trigger: the source stream dropped them. A delivery
    # whose ack wait ran out (a loaded machine) comes again and is counted as redelivered; the
    # ledger counts a repeat of the same message as a launch again (the first attempt may have
    # died before counting), so only those repeats may widen the launch and duplicate counters.
    # The instances themselves are exactly 700 (checked above).
    again = stats.redelivered
    assert (stats.received - again, stats.rejected) == (900, 0)
    assert stats.launched + stats.duplicates == stats.received
    assert 700 <= stats.launched <= 700 + again
    assert 200 <= stats.duplicates <= 200 + again
    print(
        f"\none replica: 900 deliveries, 700 launches in {elapsed:.2f}s ({900 / elapsed:.0f} msg/s incl. publishing)"
    )


async def _start_subprocess_replica(url: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "natsflow_engine.triggers",
        url,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    async with asyncio.timeout(15):
        while b"trigger server ready" not in await proc.stderr.readline():
            pass
    return proc


async def test_three_replicas_one_hanging_one_killed(nc: Client, nats_url: str, unique: str) -> None:
    subject, stream, consumer = await _setup(nc, unique)
    killed = await _start_subprocess_replica(nats_url)
    nc2 = await nats.connect(nats_url)
    hanging = await TriggerServer(nc2, FAST).start()
    runner = await hanging.wait_ready(unique, "pay")
    original = runner.ledger.launch
    hung = 0

    async def launch_then_hang(cmd: Any, origin: str, *, data: bytes | None = None) -> bool:
        """Crash simulation: the launch is published, the source message is never acknowledged."""
        nonlocal hung
        result = await original(cmd, origin, data=data)
        hung += 1
        await asyncio.Event().wait()
        return result

    runner.ledger = type(runner.ledger)(runner.ledger.js, runner.ledger.kv)
    runner.ledger.launch = launch_then_hang  # type: ignore[method-assign]
    try:
        async with watchdog(25), running_engine(nc), TriggerServer(nc, FAST) as survivor:
            await survivor.wait_ready(unique, "pay")

            async def kill_both() -> None:
                await wait_for(lambda: instance_count(nc, unique), interval=0.005)
                killed.send_signal(signal.SIGKILL)
                await hanging.stop()  # cancels the hung launches (no ack) ...
                await nc2.close()  # ... and drops the connection

            await _publish_1000(nc, subject, kill_both)
            await wait_for(lambda: _drained(nc, stream, consumer), timeout=30)
            await _exactly(nc, unique, UNIQUE_KEYS)
            local = survivor.stats.local[layout.trigger_key(unique, "pay")]
    finally:
        if killed.returncode is None:
            killed.kill()
        await killed.wait()
        if not nc2.is_closed:
            await nc2.close()
    instances = await nc.jetstream().key_value(layout.BUCKET_INSTANCES)
    for n in (0, 150, 299, 699):
        await instances.get(
            layout.instance_key(unique, layout.idempotent_instance_id(unique, "pay", f"k{n}"))
        )
    assert hung > 0 and local.redelivered > 0  # launched but unacknowledged, then redelivered
    assert local.launched + local.duplicates == local.received and local.rejected == 0
    print(f"\nhung after launch: {hung}; survivor: {local}")
