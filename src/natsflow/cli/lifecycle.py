"""How the long-running commands (``engine``, ``trigger-server``, ``worker``, ``console``,
``dev``) wait and end: until SIGINT/SIGTERM (exit 0), or until their NATS connection is closed
for good (exit 1, see :mod:`natsflow_engine.liveness`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Coroutine
from typing import Any

from natsflow_engine.liveness import Liveness

from natsflow.cli.common import run
from natsflow.errors import ConnectionFailedError

__all__ = ["SHUTDOWN_BOUND", "catch_stop_signals", "raise_if_dead", "serve", "shut_down", "until_stopped"]

log = logging.getLogger(__name__)

SHUTDOWN_BOUND = 30.0
"""Seconds the parts of a component may take to stop after a fatal fault (then it exits anyway)."""


_STOPS: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}


def catch_stop_signals() -> asyncio.Event:
    """From now on SIGINT/SIGTERM set the returned event (one per loop) instead of ending the
    process; :func:`until_stopped` then returns at once. Called before a command starts its parts,
    so that a signal arriving while they start is a clean stop, not a kill by the default action."""
    loop = asyncio.get_running_loop()
    stop = _STOPS.get(loop)
    if stop is None:
        stop = _STOPS[loop] = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
    return stop


def serve(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-running command's ``main`` with the stop signals caught from its first line."""

    async def guarded() -> None:
        loop = asyncio.get_running_loop()
        catch_stop_signals()
        try:
            await main
        finally:
            _STOPS.pop(loop, None)

    run(guarded())


async def until_stopped(liveness: Liveness | None = None) -> None:
    """Until SIGINT/SIGTERM arrives (also before this call, see :func:`catch_stop_signals`) or
    ``liveness`` fails, whichever comes first; from then on ``liveness`` is stopping (closing
    connections is expected)."""
    stop = catch_stop_signals()
    waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait(), name="natsflow-signal")]
    if liveness is not None:
        waiters.append(asyncio.create_task(liveness.wait(), name="natsflow-liveness"))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if liveness is not None:
            liveness.stopping()
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def shut_down(liveness: Liveness | None, *steps: Awaitable[None]) -> None:
    """Run the stop steps in order, each failure logged by its owner and skipped; after a fatal
    fault the whole shutdown is bounded by :data:`SHUTDOWN_BOUND`."""
    bound = SHUTDOWN_BOUND if liveness is not None and not liveness.alive else None
    pending = list(steps)
    try:
        async with asyncio.timeout(bound):
            while pending:
                with contextlib.suppress(Exception):
                    await pending.pop(0)
    except TimeoutError:
        log.error("stopping took longer than %gs; exiting anyway", bound)
    finally:
        for step in pending:  # never awaited (timed out): close the coroutines
            if asyncio.iscoroutine(step):
                step.close()


def raise_if_dead(liveness: Liveness | None) -> None:
    """After the shutdown: a component that lost its connection for good ends non-zero."""
    if liveness is not None and liveness.reason is not None:
        raise ConnectionFailedError(liveness.reason)
