"""Typed keys of the aiohttp application and request state."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web
from nats.aio.client import Client

from natsflow_console.auth import User

if TYPE_CHECKING:
    from natsflow_console.app import ConsoleSettings

__all__ = ["NC_KEY", "SETTINGS_KEY", "STREAMS_KEY", "USER_KEY"]

NC_KEY = web.AppKey("nc", Client)
SETTINGS_KEY: web.AppKey[ConsoleSettings] = web.AppKey("settings")
STREAMS_KEY = web.AppKey("streams", set[asyncio.Task[Any]])
USER_KEY = web.RequestKey("user", User)
"""The authenticated :class:`User` in ``request[USER_KEY]``."""
