"""``/healthz`` and ``/readyz`` of the console, with one connection or one per tenant account.

One connection (``--nats-url``): both answer ``{"nats": true}`` (200) while it is connected and
503 otherwise (``natsflow console`` exits when the connection is closed for good).

Tenant connections (``--tenant-credentials-dir``): each tenant's connection is supervised on
its own (:class:`TenantConnections`), and both answers list every served tenant with its state::

    {"tenants": {"a": {"state": "ready"},
                 "b": {"state": "backoff", "failures": 3, "error": "...", "retry_in": 2.0}},
     "ready": ["a"], "unhealthy": ["b"]}

A tenant whose connection is down is unhealthy alone (this body, the warning its connection
logs, the gauge ``natsflow_tenant_connection_up``): ``/healthz`` stays 200 (restarting the
replica would not mend one tenant's credentials and would cut off the others), and ``/readyz``
answers 503 only when the replica serves nothing it should: tenants are listed and none of
them is ready. With no tenant listed yet it is ready (the operator writes the first file later).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from natsflow_engine.accounts.connections import TenantConnections, TenantState

from natsflow_console.keys import NC_KEY, TENANTS_KEY

__all__ = ["healthz", "readyz", "tenant_report"]


def tenant_report(tenants: TenantConnections) -> dict[str, Any]:
    """The state of every served tenant's connection (the body of both endpoints)."""
    states: dict[str, dict[str, Any]] = {}
    for tenant in tenants.tenants:
        health = tenants.health(tenant)
        entry: dict[str, Any] = {"state": health.state.value}
        if health.state is not TenantState.READY:
            entry["failures"] = health.failures
            if health.last_error:
                entry["error"] = health.last_error
            if health.retry_in is not None:
                entry["retry_in"] = health.retry_in
        states[tenant] = entry
    ready = [t for t, s in states.items() if s["state"] == TenantState.READY.value]
    return {"tenants": states, "ready": ready, "unhealthy": [t for t in states if t not in ready]}


def _single(request: web.Request) -> web.Response:
    connected = request.app[NC_KEY].is_connected
    return web.json_response({"nats": connected}, status=200 if connected else 503)


async def healthz(request: web.Request) -> web.StreamResponse:
    """Alive: the one connection is connected; with tenant connections always (see above)."""
    tenants = request.app.get(TENANTS_KEY)
    if tenants is None:
        return _single(request)
    return web.json_response(tenant_report(tenants))


async def readyz(request: web.Request) -> web.StreamResponse:
    """Ready: the one connection is connected; with tenant connections, at least one listed
    tenant is ready, or none is listed."""
    tenants = request.app.get(TENANTS_KEY)
    if tenants is None:
        return _single(request)
    report = tenant_report(tenants)
    serving = bool(report["ready"]) or not report["tenants"]
    return web.json_response(report, status=200 if serving else 503)
