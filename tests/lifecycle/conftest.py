"""A fresh operator-mode nats-server per lifecycle test: the tests close its connections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lifecycle_kit import Platform, platform


@pytest.fixture
async def acme(tmp_path: Path) -> AsyncIterator[Platform]:
    server, made = await platform(tmp_path)
    try:
        yield made
    finally:
        server.close()
