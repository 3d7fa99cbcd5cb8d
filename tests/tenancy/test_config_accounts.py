"""Accounts declared in the server configuration (no JWTs): each has its own JetStream."""

from __future__ import annotations

import nats
import pytest
from nats.js.errors import NotFoundError
from natsflow_engine.server import EmbeddedNatsServer, accounts_config


async def test_config_accounts_isolate_jetstream() -> None:
    config = accounts_config({"A": [("alice", "pa")], "B": [("bob", "pb"), ("bea", "pb2")]})
    with EmbeddedNatsServer(config=config) as server:
        host = server.url.removeprefix("nats://")
        alice = await nats.connect(f"nats://alice:pa@{host}")
        bob = await nats.connect(f"nats://bob:pb@{host}")
        bea = await nats.connect(f"nats://bea:pb2@{host}")
        try:
            await alice.jetstream().add_stream(name="S", subjects=["s.>"])
            await alice.jetstream().publish("s.1", b"a's")
            with pytest.raises(NotFoundError):
                await bob.jetstream().stream_info("S")
            await bob.jetstream().add_stream(name="S", subjects=["s.>"])  # the same name, B's own
            assert (await bea.jetstream().stream_info("S")).state.messages == 0  # bea shares B
            assert (await alice.jetstream().stream_info("S")).state.messages == 1
        finally:
            for nc in (alice, bob, bea):
                await nc.close()
