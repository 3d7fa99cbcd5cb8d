"""pytest plugin of the test kit, registered through the ``pytest11`` entry point.

Installing natsflow is enough for ``async def`` tests (like the README's ``ProcessTestEngine``
example) to run: each one runs in a fresh event loop. When pytest-asyncio or anyio is active,
this plugin leaves async tests to it (configure it as usual, e.g. ``asyncio_mode = auto``).
"""

from __future__ import annotations

import asyncio
import inspect

import pytest

__all__ = ["pytest_pyfunc_call"]

_OTHER_RUNNERS = ("asyncio", "anyio")
"""Plugins that run async tests themselves."""


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    manager = pyfuncitem.config.pluginmanager
    if any(manager.hasplugin(name) for name in _OTHER_RUNNERS):
        return None
    wanted = inspect.signature(function).parameters
    asyncio.run(function(**{k: v for k, v in pyfuncitem.funcargs.items() if k in wanted}))
    return True
