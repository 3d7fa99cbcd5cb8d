"""CLI fixtures: engine + API server in the test's loop, the CLI run by CliRunner in a thread."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest
from cli_kit import Stack, bounded_stop
from click.testing import CliRunner, Result
from nats.aio.client import Client
from natsflow_engine.api.client import ApiClient
from natsflow_engine.api.server import ApiServer
from natsflow_engine.runtime.engine import Engine, EngineSettings

from natsflow.cli import cli


@pytest.fixture
async def stack(nc: Client, nats_url: str, unique: str) -> AsyncIterator[Stack]:
    engine = await Engine(nc, EngineSettings(fetch_timeout=0.2)).start()
    server = await ApiServer(nc).start()

    async def invoke(*args: str) -> Result:
        """Run ``natsflow --nats-url URL --tenant T ARGS`` in a thread (the CLI runs its own loop)."""
        runner = CliRunner()
        argv = ["--nats-url", nats_url, "--tenant", unique, *args]
        result = await asyncio.to_thread(runner.invoke, cli, argv)
        _restore_logging()
        return result

    try:
        yield Stack(invoke, ApiClient(nc, unique), nc, unique, nats_url)
    finally:
        await bounded_stop(server.stop(), "API server")
        await bounded_stop(engine.stop(timeout=2.0), "engine")


def _restore_logging() -> None:
    """The CLI installs a log handler on the stream CliRunner captured; point it back at stderr."""
    from natsflow_engine.observability import configure_logging

    configure_logging("text", "WARNING", stream=sys.stderr)
