"""API fixtures: an engine and an API server on the session's nats-server, a client per tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from api_kit import Api, bounded_stop
from nats.aio.client import Client
from natsflow_engine.api.client import ApiClient
from natsflow_engine.api.server import ApiServer, ApiSettings
from natsflow_engine.runtime.engine import Engine, EngineSettings


@pytest.fixture
async def api(nc: Client, unique: str) -> AsyncIterator[Api]:
    engine = await Engine(nc, EngineSettings(fetch_timeout=0.2)).start()
    server = await ApiServer(nc, ApiSettings(max_payload=64 * 1024)).start()
    try:
        yield Api(ApiClient(nc, unique, timeout=5.0), server, engine, nc, unique)
    finally:
        await bounded_stop(server.stop(), "API server")
        await bounded_stop(engine.stop(timeout=2.0), "engine")
