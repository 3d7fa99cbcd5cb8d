"""Types shared by the CLI tests (not a test module)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from click.testing import Result
from nats.aio.client import Client
from natsflow_engine.api.client import ApiClient

Invoke = Callable[..., Awaitable[Result]]


@dataclass
class Stack:
    invoke: Invoke
    api: ApiClient
    nc: Client
    tenant: str
    url: str


async def bounded_stop(stopping: Awaitable[None], what: str, limit: float = 20.0) -> None:
    """Await a stop; if it hangs, print every task's stack (diagnosis) and fail."""
    try:
        async with asyncio.timeout(limit):
            await stopping
    except TimeoutError:
        for task in asyncio.all_tasks():
            print(f"--- {task.get_name()}", file=sys.stderr)
            task.print_stack(limit=8, file=sys.stderr)
        raise AssertionError(f"{what} did not stop within {limit}s") from None
