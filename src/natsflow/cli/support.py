"""Helpers of the client commands that need no click: argument parsing, paged and live listings.

Everything here talks to natsflow through :class:`~natsflow_engine.api.client.ApiClient` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from natsflow_engine.api.client import ApiClient
from natsflow_engine.api.protocol import InstanceSummary
from natsflow_engine.natsutil import cancel_and_wait
from natsflow_engine.runtime.records import HistoryRecord

from natsflow.cli import render
from natsflow.errors import NatsflowError

__all__ = ["all_instances", "live_instances", "parse_duration", "parse_variables"]


def parse_variables(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise NatsflowError(f"cannot read variables file {text[1:]}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NatsflowError(f"--vars is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise NatsflowError("--vars must be a JSON object, like '{\"amount\": 10}'")
    return value


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``10s``, ``250ms``, ``5m``, ``1h``, ``2d`` or plain seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|d)?\s*", text)
    if match is None:
        raise NatsflowError(f"invalid duration {text!r}: use e.g. 10s, 250ms, 5m, 1h")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


async def all_instances(api: ApiClient, limit: int, **filters: Any) -> list[Any]:
    found: list[Any] = []
    cursor = None
    while len(found) < limit:
        page = await api.instances(limit=min(1000, limit - len(found)), cursor=cursor, **filters)
        found += page.instances
        if page.cursor is None:
            break
        cursor = page.cursor
    return found


async def live_instances(
    api: ApiClient,
    limit: int,
    duration: float,
    filters: dict[str, Any],
    write: Callable[[str], None] = print,
) -> None:
    """Draw the instances table, then redraw it (at most 5 times a second) as history records
    arrive, for ``duration`` seconds (0: until cancelled). ``filters`` are those of
    :meth:`ApiClient.instances` (``process_id``, ``state``, ``business_key``)."""
    rows = {i.id: i for i in await all_instances(api, limit, **filters)}
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else "\n"

    def draw() -> None:
        chosen = [i for i in rows.values() if filters.get("state") in (None, i.state)]
        write(clear + render.instances_table(chosen[-limit:]))

    draw()
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + duration if duration > 0 else None
    last_draw, dirty = loop.time(), False
    queue: asyncio.Queue[HistoryRecord] = asyncio.Queue()
    reader = asyncio.create_task(_read_events(api, queue), name="natsflow-cli-events")
    try:
        while stop_at is None or loop.time() < stop_at:
            wait = 0.2 if stop_at is None else max(0.0, min(0.2, stop_at - loop.time()))
            try:
                record = await asyncio.wait_for(queue.get(), timeout=wait)
            except TimeoutError:
                if reader.done():
                    reader.result()  # the subscription failed: raise its error
                record = None
            if record is not None and filters.get("process_id") in (None, record.process_id):
                await _update_row(api, rows, record, filters.get("business_key"))
                dirty = True
            if dirty and loop.time() - last_draw >= 0.2:
                draw()
                last_draw, dirty = loop.time(), False
    finally:
        await cancel_and_wait(reader)
    if dirty:
        draw()


async def _read_events(api: ApiClient, queue: asyncio.Queue[HistoryRecord]) -> None:
    async for record in api.events():
        queue.put_nowait(record)


async def _update_row(
    api: ApiClient, rows: dict[str, Any], record: HistoryRecord, business_key: str | None
) -> None:
    """Apply one history record to the live table (a new instance is read once)."""
    current = rows.get(record.instance)
    if current is None:
        with contextlib.suppress(NatsflowError):
            v = await api.instance(record.instance)
            if business_key in (None, v.business_key):
                rows[v.id] = InstanceSummary(
                    id=v.id,
                    process_id=v.process_id,
                    version=v.version,
                    state=v.state,
                    business_key=v.business_key,
                    started=v.started,
                    ended=v.ended,
                    incidents=len(v.incidents),
                )
        return
    current.state = record.state
    for event in record.events:
        if event.type == "incident-raised":
            current.incidents += 1
        elif event.type == "incident-resolved":
            current.incidents = max(0, current.incidents - 1)
