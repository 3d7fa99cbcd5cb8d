"""Typed keys of the aiohttp application and request state."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web
from nats.aio.client import Client
from natsflow_engine.accounts.connections import TenantConnections
from prometheus_client import CollectorRegistry

from natsflow_console.auth import User

if TYPE_CHECKING:
    from natsflow_console.app import ConsoleSettings

__all__ = ["NC_KEY", "REGISTRY_KEY", "SETTINGS_KEY", "STREAMS_KEY", "TENANTS_KEY", "USER_KEY", "nc_of"]

NC_KEY = web.AppKey("nc", Client)
SETTINGS_KEY: web.AppKey[ConsoleSettings] = web.AppKey("settings")
STREAMS_KEY = web.AppKey("streams", set[asyncio.Task[Any]])
TENANTS_KEY = web.AppKey("tenants", TenantConnections)
"""With tenant accounts: one connection per tenant, with that tenant's platform credentials."""
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
"""Metrics served on ``/metrics`` beside the process's default registry (tenant connections)."""
USER_KEY = web.RequestKey("user", User)
"""The authenticated :class:`User` in ``request[USER_KEY]``."""


def nc_of(request: web.Request) -> Client:
    """The connection that acts for the signed-in user: the user's tenant's account connection
    when the console serves tenant accounts (``NotFoundError`` for a tenant it does not serve,
    ``ConnectionFailedError`` while it is not connected), else the console's one connection."""
    tenants = request.app.get(TENANTS_KEY)
    if tenants is not None:
        return tenants.client(request[USER_KEY].tenant)
    return request.app[NC_KEY]
