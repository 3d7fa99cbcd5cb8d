"""Shared fixtures: one real nats-server per test session, a fresh connection per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client
from natsflow_engine.server import EmbeddedNatsServer

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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run fault and soak tests marked 'slow'")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow") or os.environ.get("NATSFLOW_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow fault/soak test: run with --run-slow (.ci/run does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
