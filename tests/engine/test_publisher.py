"""The engine's lean JetStream publisher answers as nats-py's ``js.publish`` does."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError, NoStreamResponseError
from natsflow_engine.publisher import JetStreamPublisher


async def test_acknowledged_publishes_return_their_stream_sequence(nc: Client, unique: str) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=unique, subjects=[f"{unique}.>"]))
    publisher = await JetStreamPublisher(nc).start()
    try:
        futures = [await publisher.send(f"{unique}.{n}", b"x", {"Nats-Msg-Id": f"m{n}"}) for n in range(50)]
        assert await asyncio.gather(*futures) == list(range(1, 51))
        assert await publisher.publish(f"{unique}.0", b"x", {"Nats-Msg-Id": "m0"}) == 1  # a duplicate: its sequence
        assert (await js.stream_info(unique)).state.messages == 50
    finally:
        await publisher.stop()
        await js.delete_stream(unique)


async def test_refusals_are_the_errors_nats_py_raises(nc: Client, unique: str) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=unique, subjects=[f"{unique}.>"]))
    publisher = await JetStreamPublisher(nc).start()
    try:
        await publisher.publish(f"{unique}.k", b"1")
        with pytest.raises(BadRequestError) as wrong:  # compare-and-set lost
            await publisher.publish(f"{unique}.k", b"2", {"Nats-Expected-Last-Subject-Sequence": "7"})
        assert wrong.value.err_code == 10071
        with pytest.raises(NoStreamResponseError):  # no stream stores the subject
            await publisher.publish(f"nostream{unique}.k", b"x")
    finally:
        await publisher.stop()
        await js.delete_stream(unique)


async def test_an_unanswered_publish_times_out_and_stop_fails_what_waits(nc: Client, unique: str) -> None:
    sink = await nc.subscribe(f"{unique}.sink")  # takes the message and never answers
    publisher = await JetStreamPublisher(nc, timeout=0.2).start()
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await publisher.publish(f"{unique}.sink", b"x")
        waiting = await publisher.send(f"{unique}.sink", b"y")
    finally:
        await publisher.stop()
        await sink.unsubscribe()
    with pytest.raises(nats.errors.ConnectionClosedError):
        await waiting
