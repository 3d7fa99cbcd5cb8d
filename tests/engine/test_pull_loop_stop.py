"""Stopping background tasks: a stop must end even when its cancel meets a wake-up.

Python 3.11's ``asyncio.wait_for`` returns the inner result, and drops the cancel, when the
awaited thing completes in the same turn of the loop as the cancel arrives. A loop that waits
through ``wait_for`` then never sees the cancel, and a stop that awaits it waits forever (an
engine's stop hung this way after a step finished at the moment of the stop).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, RetentionPolicy, StreamConfig
from natsflow_engine.natsutil import PullLoop, cancel_and_wait


async def _nothing(msg: Msg) -> None:
    await msg.ack()


async def test_stop_pulling_ends_when_the_cancel_meets_a_wake_up(nc: Client, unique: str) -> None:
    js = nc.jetstream()
    stream = f"STOP_{unique}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"stop.{unique}.>"]))
    await js.add_consumer(stream, ConsumerConfig(durable_name="c"))
    loop = await PullLoop(nc, stream, "c", _nothing, max_inflight=8, batch=8, expires=5.0).start()
    for _ in range(200):  # the pump asked for all it has room for and now waits
        if loop.outstanding == 8:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    loop._wake.set()  # a handler ends in the same turn as the stop arrives
    stop = asyncio.create_task(loop.stop_pulling())
    done, _ = await asyncio.wait([stop], timeout=20)
    assert stop in done, "stop_pulling did not end"
    await js.delete_stream(stream)


async def test_cancel_and_wait_cancels_again_a_task_that_swallowed_the_cancel() -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            swallowed.set()  # carries on as if nothing happened, once
        await asyncio.sleep(60)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await cancel_and_wait(task, timeout=20)
    assert swallowed.is_set() and task.cancelled()


async def _immortal(release: asyncio.Event) -> None:
    """Ignores every cancel until ``release`` is set."""
    while not release.is_set():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            continue


async def test_cancel_and_wait_gives_up_on_a_task_that_never_ends() -> None:
    release = asyncio.Event()
    task = asyncio.create_task(_immortal(release))
    await asyncio.sleep(0)
    await cancel_and_wait(task, timeout=0.3)  # returns instead of hanging its caller
    assert not task.done()
    release.set()
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.done()


async def test_cancel_and_wait_passes_its_callers_cancel_on() -> None:
    release = asyncio.Event()
    inner = asyncio.create_task(_immortal(release))
    outer = asyncio.create_task(cancel_and_wait(inner, timeout=60))
    await asyncio.sleep(0.05)
    outer.cancel()
    done, _ = await asyncio.wait([outer], timeout=10)
    assert outer in done and outer.cancelled()
    release.set()
    inner.cancel()
    await asyncio.wait([inner], timeout=5)
    assert inner.done()


class _Acked:
    """A pull handler that acknowledges each message, keeps its data and signals its arrival."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.arrived = asyncio.Event()

    async def __call__(self, msg: Msg) -> None:
        await msg.ack_sync()
        self.seen.append(msg.data)
        self.arrived.set()


async def test_a_consumer_deleted_under_the_loop_is_created_again_and_pulled_from(nc: Client, unique: str) -> None:
    js = nc.jetstream()
    stream = f"GONE_{unique}"  # a work queue, as NF_CMD: what was acknowledged is gone
    await js.add_stream(
        StreamConfig(name=stream, subjects=[f"gone.{unique}.>"], retention=RetentionPolicy.WORK_QUEUE)
    )
    config = ConsumerConfig(durable_name="c", mem_storage=True)

    async def recreate() -> None:
        await js.add_consumer(stream, config)

    await recreate()
    handler = _Acked()
    seen, arrived = handler.seen, handler.arrived

    loop = await PullLoop(nc, stream, "c", handler, max_inflight=8, batch=8, expires=5.0, recreate=recreate).start()
    try:
        await js.publish(f"gone.{unique}.1", b"before")
        await asyncio.wait_for(arrived.wait(), 30)
        arrived.clear()
        await js.delete_consumer(stream, "c")  # as a restarted server forgets a memory consumer
        await js.publish(f"gone.{unique}.2", b"after")
        await asyncio.wait_for(arrived.wait(), 30)
        assert seen == [b"before", b"after"]
        assert loop.recreated >= 1
    finally:
        await loop.stop_pulling()
        await js.delete_stream(stream)


async def test_a_missing_consumer_is_warned_about_once_per_outage(
    nc: Client, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    js = nc.jetstream()
    stream = f"OUT_{unique}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"out.{unique}.>"], retention=RetentionPolicy.WORK_QUEUE))
    handler = _Acked()
    seen, arrived = handler.seen, handler.arrived

    def warnings() -> int:
        return sum(1 for r in caplog.records if r.levelno == logging.WARNING and "has no consumer" in r.getMessage())

    caplog.set_level(logging.DEBUG, logger="natsflow_engine.natsutil")
    # no recreate: someone else makes the consumer, the loop asks again every quarter second
    loop = await PullLoop(nc, stream, "c", handler, max_inflight=8, batch=8, expires=5.0).start()
    try:
        async with asyncio.timeout(30):  # several pulls, each answered 503
            while sum(1 for r in caplog.records if "has no consumer" in r.getMessage()) < 3:
                await asyncio.sleep(0.05)
        assert warnings() == 1
        await js.add_consumer(stream, ConsumerConfig(durable_name="c"))
        await js.publish(f"out.{unique}.1", b"one")
        await asyncio.wait_for(arrived.wait(), 30)
        await js.delete_consumer(stream, "c")  # a second outage: warned again
        async with asyncio.timeout(30):
            while warnings() < 2:
                await asyncio.sleep(0.05)
        assert seen == [b"one"]
    finally:
        await loop.stop_pulling()
        await js.delete_stream(stream)


async def test_a_pulled_message_has_its_headers_and_its_ack(nc: Client, unique: str) -> None:
    js = nc.jetstream()
    stream = f"HDR_{unique}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"hdr.{unique}.>"], retention=RetentionPolicy.WORK_QUEUE))
    await js.add_consumer(stream, ConsumerConfig(durable_name="c"))
    got: asyncio.Queue[Msg] = asyncio.Queue()

    async def handler(msg: Msg) -> None:
        await got.put(msg)
        await msg.ack()  # framed by the publisher's post()

    loop = await PullLoop(nc, stream, "c", handler, max_inflight=8, batch=8, expires=5.0).start()
    try:
        await js.publish(f"hdr.{unique}.a", b"with", headers={"Nats-Msg-Id": "one", "traceparent": "00-ab-cd-01"})
        await js.publish(f"hdr.{unique}.b", b"without")
        first, second = await asyncio.wait_for(got.get(), 30), await asyncio.wait_for(got.get(), 30)
        assert (first.subject, first.data) == (f"hdr.{unique}.a", b"with")
        assert first.headers == {"Nats-Msg-Id": "one", "traceparent": "00-ab-cd-01"}  # parsed when read
        assert first.header == first.headers and first.metadata.num_delivered == 1
        assert (second.data, second.headers) == (b"without", None)
        async with asyncio.timeout(30):  # both acknowledged: the work queue is empty
            while (await js.stream_info(stream)).state.messages:
                await asyncio.sleep(0.05)
    finally:
        await loop.stop_pulling()
        await js.delete_stream(stream)
