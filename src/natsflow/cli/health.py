"""The health server of the long-running commands (``engine``, ``trigger-server``)."""

from __future__ import annotations

import errno

import click
from natsflow_engine.liveness import Liveness
from natsflow_engine.observability import HealthServer, ReadinessCheck
from prometheus_client import CollectorRegistry

from natsflow.errors import NatsflowError

__all__ = ["ENGINE_HEALTH_PORT", "TRIGGER_SERVER_HEALTH_PORT", "health_port_option", "serve_health"]

ENGINE_HEALTH_PORT = 8080
TRIGGER_SERVER_HEALTH_PORT = 8081
"""Distinct defaults, so an engine and a trigger server run side by side on one host."""


def health_port_option(default: int) -> click.Option:
    return click.Option(
        ["--health-port"],
        type=int,
        default=default,
        show_default=True,
        envvar="NATSFLOW_HEALTH_PORT",
        help="Port of /healthz, /readyz and /metrics (0: off).",
    )


async def serve_health(
    port: int,
    checks: dict[str, ReadinessCheck],
    registry: CollectorRegistry | None,
    liveness: Liveness | None = None,
) -> HealthServer | None:
    """Start /healthz (503 once ``liveness`` failed), /readyz (``checks``) and /metrics
    (``registry``) on ``port`` (0: none).

    A port in use is one error line naming the option, not a traceback."""
    if not port:
        return None
    server = HealthServer("0.0.0.0", port, registry=registry, liveness=liveness.probe if liveness else None)
    for name, check in checks.items():
        server.add_check(name, check)
    try:
        await server.start()
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise NatsflowError(
            f"cannot listen on port {port} for /healthz, /readyz and /metrics: {reason} "
            "(choose another with --health-port or NATSFLOW_HEALTH_PORT; 0 turns it off)"
        ) from exc
    return server
