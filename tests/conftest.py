"""Shared fixtures: one real nats-server per test session, a fresh connection per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client

from natsflow.engine.server import EmbeddedNatsServer

_counter = itertools.count()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[EmbeddedNatsServer]:
    with EmbeddedNatsServer() as server:
        yield server


@pytest.fixture
def nats_url(nats_server: EmbeddedNatsServer) -> str:
    return nats_server.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def unique() -> str:
    """A short name unique within the session, for streams, buckets and tenants."""
    return f"t{os.getpid() % 1000}x{next(_counter)}"
