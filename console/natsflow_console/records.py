"""Instance records of one tenant read and watched in KV, as JSON-ready documents."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue
from natsflow_engine import layout
from natsflow_engine.api.views import instance_view, load_instance
from natsflow_engine.errors import NotFoundError
from natsflow_engine.runtime.records import InstanceState, decode_state

__all__ = ["detail", "read_detail", "watch_detail"]

WATCH_INACTIVE = 30.0
"""Seconds the server keeps a watch's consumer after its subscriber went away."""


def detail(state: InstanceState) -> dict[str, Any]:
    """The instance view of the API plus the variables of the process scope and of every other
    scope that has some."""
    view: dict[str, Any] = msgspec.to_builtins(instance_view(state))
    view["scopes"] = [
        {"ei": ei.key, "element_id": ei.el, "parent": ei.parent, "variables": ei.vars or {}}
        for ei in sorted(state.eis.values(), key=lambda e: e.key)
        if ei.vars or ei.key == 1
    ]
    return view


async def _bucket(nc: Client) -> KeyValue:
    try:
        return await nc.jetstream().key_value(layout.BUCKET_INSTANCES)
    except BucketNotFoundError:
        raise NotFoundError("no instance exists yet (the instance bucket is missing)") from None


async def read_detail(nc: Client, tenant: str, instance: str) -> dict[str, Any]:
    state, _ = await load_instance(await _bucket(nc), tenant, instance)
    return detail(state)


async def watch_detail(nc: Client, tenant: str, instance: str) -> AsyncIterator[dict[str, Any]]:
    """The instance's detail now and after every change of its record (a KV watch)."""
    kv = await _bucket(nc)
    await load_instance(kv, tenant, instance)  # validates the id; NotFoundError when absent
    watcher = await kv.watch(layout.instance_key(tenant, instance), inactive_threshold=WATCH_INACTIVE)
    try:
        async for entry in watcher:
            if entry is None or not entry.value:
                continue
            try:
                state = decode_state(entry.value)
            except msgspec.DecodeError:
                continue
            yield detail(state)
    finally:
        stop: Any = watcher.stop  # nats-py leaves it unannotated
        with contextlib.suppress(Exception):
            await stop()
