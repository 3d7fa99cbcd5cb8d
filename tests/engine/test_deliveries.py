"""``natsutil.deliveries`` reads a message's delivery count as nats-py's metadata does."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError
from nats.js.api import StreamConfig
from natsflow_engine.natsutil import deliveries


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.JOBS.worker-a.3.17.9.1733380000000000000.4",  # v1
        "$JS.ACK.hub.ACCHASH.JOBS.worker-a.5.17.9.1733380000000000000.4",  # v2 without the token
        "$JS.ACK.hub.ACCHASH.JOBS.worker-a.7.17.9.1733380000000000000.4.xyz",  # v2
    ],
)
def test_both_acknowledgement_subject_forms(reply: str) -> None:
    msg = Msg(_client=None, subject="s", reply=reply)  # type: ignore[arg-type]
    assert deliveries(msg) == msg.metadata.num_delivered


def test_not_a_jetstream_message_is_nats_py_s_error() -> None:
    with pytest.raises(NotJSMessageError):
        deliveries(Msg(_client=None, subject="s", reply="_INBOX.x"))  # type: ignore[arg-type]


async def test_a_redelivered_message_counts_twice(nc: Client, unique: str) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=unique, subjects=[f"{unique}.>"]))
    try:
        await js.publish(f"{unique}.a", b"x")
        sub = await js.pull_subscribe(f"{unique}.a", durable="d")
        first = (await sub.fetch(1, timeout=2))[0]
        assert deliveries(first) == 1
        await first.nak()
        again = (await sub.fetch(1, timeout=2))[0]
        assert deliveries(again) == again.metadata.num_delivered == 2
    finally:
        await js.delete_stream(unique)
