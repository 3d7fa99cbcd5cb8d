"""``ensure_layout`` creates streams and buckets concurrently in a TaskGroup: a failure is raised
as itself (callers catch NATS errors by type) and leaves no creation running behind it."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client
from nats.js.errors import ServiceUnavailableError
from natsflow_engine import layout
from natsflow_engine.runtime.setup import ensure_layout, open_buckets


def _leftovers() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("natsflow-ensure") and not t.done()]


async def test_a_failing_layout_raises_the_nats_error_and_leaves_no_task(nc: Client) -> None:
    nobody = nc.jetstream(prefix="$JS.nobody-answers.API")  # no JetStream behind this prefix
    with pytest.raises(ServiceUnavailableError):
        await ensure_layout(nobody)
    assert _leftovers() == []
    with pytest.raises(ServiceUnavailableError):
        await open_buckets(nobody)
    assert _leftovers() == []


async def test_layout_then_buckets(nc: Client) -> None:
    js = nc.jetstream()
    await ensure_layout(js)
    buckets = await open_buckets(js)
    assert {layout.BUCKET_INSTANCES, layout.BUCKET_WORKFLOWS} <= set(buckets)
