"""``store.wait_all``: every outcome retrieved, the first failure raised, a cancel passed on."""

from __future__ import annotations

import asyncio

import pytest
from natsflow_engine.store import wait_all


async def test_every_future_is_waited_for_and_the_first_failure_raised() -> None:
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(4)]
    waiting = asyncio.ensure_future(wait_all(list(futures)))
    futures[3].set_result(3)
    futures[1].set_exception(ValueError("second"))
    futures[2].set_exception(KeyError("third"))
    await asyncio.sleep(0)
    assert not waiting.done()  # the first is still out
    futures[0].set_result(0)
    with pytest.raises(ValueError, match="second"):
        await waiting


async def test_coroutines_run_side_by_side_with_the_futures() -> None:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    ran = asyncio.Event()

    async def effect() -> None:
        ran.set()

    waiting = asyncio.ensure_future(wait_all([future, effect()]))
    await asyncio.wait_for(ran.wait(), 5)  # started while the future is still pending
    future.set_result(1)
    await waiting


async def test_a_cancel_is_passed_on_to_what_is_pending() -> None:
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(3)]
    waiting = asyncio.ensure_future(wait_all(list(futures)))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert all(f.cancelled() for f in futures)


async def test_one_awaitable_is_awaited_as_it_is() -> None:
    async def fails() -> None:
        raise RuntimeError("alone")

    with pytest.raises(RuntimeError, match="alone"):
        await wait_all([fails()])
    await wait_all([])
