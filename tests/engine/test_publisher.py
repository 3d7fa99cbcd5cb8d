"""The engine's lean JetStream publisher answers as nats-py's ``js.publish`` does, with the
messages framed by itself and acknowledgements taken from the parser (``lean``) and through
nats-py's own publish and subscription (``lean=False``)."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError, NoStreamResponseError
from natsflow_engine import publisher as publisher_module
from natsflow_engine.publisher import JetStreamPublisher

LEAN = pytest.mark.parametrize("lean", [True, False], ids=["lean", "nats-py"])


@LEAN
async def test_acknowledged_publishes_return_their_stream_sequence(nc: Client, unique: str, lean: bool) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=unique, subjects=[f"{unique}.>"]))
    publisher = await JetStreamPublisher(nc, lean=lean).start()
    try:
        futures = [await publisher.send(f"{unique}.{n}", b"x", {"Nats-Msg-Id": f"m{n}"}) for n in range(50)]
        assert await asyncio.gather(*futures) == list(range(1, 51))
        assert await publisher.publish(f"{unique}.0", b"x", {"Nats-Msg-Id": "m0"}) == 1  # a duplicate: its sequence
        assert (await js.stream_info(unique)).state.messages == 50
    finally:
        await publisher.stop()
        await js.delete_stream(unique)


@LEAN
async def test_refusals_are_the_errors_nats_py_raises(nc: Client, unique: str, lean: bool) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=unique, subjects=[f"{unique}.>"]))
    publisher = await JetStreamPublisher(nc, lean=lean).start()
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


@LEAN
async def test_an_unanswered_publish_times_out_and_stop_fails_what_waits(nc: Client, unique: str, lean: bool) -> None:
    sink = await nc.subscribe(f"{unique}.sink")  # takes the message and never answers
    publisher = await JetStreamPublisher(nc, timeout=0.2, lean=lean).start()
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await publisher.publish(f"{unique}.sink", b"x")
        waiting = await publisher.send(f"{unique}.sink", b"y")
    finally:
        await publisher.stop()
        await sink.unsubscribe()
    with pytest.raises(nats.errors.ConnectionClosedError):
        await waiting


async def test_framed_messages_carry_what_nats_py_would_send(nc: Client, unique: str) -> None:
    seen = await nc.subscribe(f"{unique}.>")
    publisher = await JetStreamPublisher(nc, timeout=0.3).start()
    try:
        assert publisher.lean
        await publisher.send(f"{unique}.a", b"payload", {"Nats-Msg-Id": "m1", " X-Two ": "line\r\nbreak "})
        await publisher.send(f"{unique}.b", b"")
        first, second = await seen.next_msg(timeout=2), await seen.next_msg(timeout=2)
        assert (first.subject, first.data) == (f"{unique}.a", b"payload")
        assert first.headers == {"Nats-Msg-Id": "m1", "X-Two": "line  break"}  # as nats-py strips and flattens
        assert first.reply.startswith(nc._inbox_prefix.decode())
        assert (second.subject, second.data, second.headers) == (f"{unique}.b", b"", None)
    finally:
        await publisher.stop()
        await seen.unsubscribe()


async def test_bad_subjects_and_header_names_are_refused_before_anything_is_sent(nc: Client, unique: str) -> None:
    publisher = await JetStreamPublisher(nc).start()
    try:
        for subject in ("", f"{unique}.a b", f"{unique}.a\r\nPUB x 1"):
            with pytest.raises(nats.errors.BadSubjectError):
                await publisher.send(subject, b"x")
        with pytest.raises(nats.errors.BadHeaderError):
            await publisher.send(f"{unique}.a", b"x", {"Bad Name": "v"})
        with pytest.raises(nats.errors.MaxPayloadError):
            await publisher.send(f"{unique}.a", b"x" * (nc.max_payload + 1))
        assert publisher._waiting == {}  # nothing left waiting for an answer that cannot come
        assert nc.is_connected  # the connection never saw a broken frame
    finally:
        await publisher.stop()


async def test_a_failing_routed_handler_leaves_the_connection_and_other_subscriptions_alone(
    nc: Client, unique: str
) -> None:
    other = await nc.subscribe(f"{unique}.other")
    routed = await nc.subscribe(f"{unique}.routed")

    def broken(sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        raise RuntimeError("handler bug")

    assert publisher_module.route(nc, routed._id, broken)
    try:
        await nc.publish(f"{unique}.routed", b"1")
        await nc.publish(f"{unique}.other", b"2")
        assert (await other.next_msg(timeout=2)).data == b"2"  # read loop still running
        assert routed._pending_queue.qsize() == 0  # the routed message never reached nats-py's queue
    finally:
        publisher_module.route(nc, routed._id, None)
        await nc.publish(f"{unique}.routed", b"3")  # back to nats-py
        assert (await routed.next_msg(timeout=2)).data == b"3"
        await other.unsubscribe()
        await routed.unsubscribe()


@pytest.mark.parametrize(
    "block",
    [
        b"NATS/1.0\r\nNats-Msg-Id: a.1\r\ntraceparent: 00-ab-cd-01\r\n\r\n",
        b"NATS/1.0 503\r\n\r\n",
        b"NATS/1.0 404 No Messages\r\n\r\n",
        b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\nNats-Pending-Bytes: 900\r\n\r\n",
        b"NATS/1.0 409 Consumer Deleted\r\n\r\n",
        b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 10\r\n\r\n",
        b"NATS/1.0\r\nName:NoSpace\r\nBad Name: x\r\nutf: caf\xc3\xa9 \r\n\r\n",
    ],
)
async def test_parsed_headers_are_nats_py_s(nc: Client, block: bytes) -> None:
    assert publisher_module.parse_headers(block) == await nc._process_headers(block)
