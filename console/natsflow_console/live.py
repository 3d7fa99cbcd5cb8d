"""Server-Sent Events fed by NATS: nothing here polls.

``/api/instances/{id}/live`` sends ``state`` (the instance detail, from a KV watch of the
instance record: once at the start, then after every step) and ``history`` (every history
record of the instance from its first step, then each new one, from an ordered consumer on the
history stream). ``/api/events`` sends ``step``, a short notice for every new history record of
the user's tenant, so that lists can refresh the rows that changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from aiohttp import web
from natsflow_engine.api.client import ApiClient
from natsflow_engine.errors import NatsflowError

from natsflow_console.errors import from_exception
from natsflow_console.keys import SETTINGS_KEY, STREAMS_KEY, USER_KEY, nc_of
from natsflow_console.records import read_detail, watch_detail

__all__ = ["instance_stream", "tenant_stream"]

_QUEUE = 1024
Event = tuple[str, Any]


async def _pump(name: str, source: AsyncIterator[Any], queue: asyncio.Queue[Event | None]) -> None:
    try:
        async for item in source:
            await queue.put((name, item))
    finally:
        await queue.put(None)  # a source that ends (or fails) ends the stream: the page reconnects


async def _serve(request: web.Request, sources: dict[str, AsyncIterator[Any]]) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: 1000\n\n")
    except ConnectionResetError:
        return response  # the page went away before the stream started
    queue: asyncio.Queue[Event | None] = asyncio.Queue(_QUEUE)
    streams = request.app[STREAMS_KEY]
    current = asyncio.current_task()
    if current is not None:
        streams.add(current)
    pumps = [
        asyncio.create_task(_pump(name, source, queue), name=f"console-sse-{name}")
        for name, source in sources.items()
    ]
    keepalive = request.app[SETTINGS_KEY].keepalive
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), keepalive)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if item is None:
                break
            name, data = item
            await response.write(b"event: %s\ndata: %s\n\n" % (name.encode(), msgspec.json.encode(data)))
    except ConnectionResetError:
        pass  # the page went away
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        if current is not None:
            streams.discard(current)
    return response


async def instance_stream(request: web.Request) -> web.StreamResponse:
    tenant = request[USER_KEY].tenant
    iid = request.match_info["id"]
    try:
        nc = nc_of(request)
        await read_detail(nc, tenant, iid)  # not found (or another tenant's): 404 before streaming
    except NatsflowError as exc:
        return from_exception(exc)
    api = ApiClient(nc, tenant)
    return await _serve(request, {"state": watch_detail(nc, tenant, iid), "history": api.events(iid)})


async def _steps(api: ApiClient) -> AsyncIterator[dict[str, Any]]:
    async for record in api.events():
        yield {
            "instance": record.instance,
            "process_id": record.process_id,
            "state": record.state,
            "step": record.step,
            "types": sorted({e.type for e in record.events}),
        }


async def tenant_stream(request: web.Request) -> web.StreamResponse:
    try:
        api = ApiClient(nc_of(request), request[USER_KEY].tenant)
    except NatsflowError as exc:
        return from_exception(exc)
    return await _serve(request, {"step": _steps(api)})
