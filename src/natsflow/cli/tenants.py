"""Long-running commands serving many tenant accounts from a credentials directory.

With ``--tenant-credentials-dir`` (``NATSFLOW_TENANT_CREDENTIALS_DIR``), ``natsflow engine``
and ``natsflow trigger-server`` open no connection of their own: they serve every tenant whose
``<tenant>.creds`` is in the directory, each on its own connection to the tenant's account
(:class:`natsflow_engine.accounts.directory.TenantServing`). Without it they run as before on
one connection (``--nats-url``, ``--creds``) for every tenant of that account.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
from nats.aio.client import Client
from natsflow_engine.accounts.connections import TenantState
from natsflow_engine.accounts.directory import CREDENTIALS_DIR_ENV, Service, ServiceFactory, TenantServing
from natsflow_engine.observability import Metrics

from natsflow.cli.common import CliContext
from natsflow.cli.health import serve_health
from natsflow.cli.lifecycle import until_stopped
from natsflow.errors import NatsflowError

if TYPE_CHECKING:
    from natsflow_engine.runtime.engine import EngineSettings

__all__ = ["engine_services", "serve_tenant_accounts", "tenant_credentials_option", "trigger_services"]


def tenant_credentials_option() -> click.Option:
    return click.Option(
        ["--tenant-credentials-dir"],
        "tenant_credentials_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        envvar=CREDENTIALS_DIR_ENV,
        help=(
            "Serve every tenant with a <tenant>.creds file in this directory, each on its own "
            f"connection to its NATS account (polled; also {CREDENTIALS_DIR_ENV})."
        ),
    )


def engine_services(metrics: Metrics, replicas: int, settings: EngineSettings | None = None) -> ServiceFactory:
    """An engine, an API server and a trigger server per tenant."""
    from natsflow_engine.api.server import ApiServer, ApiSettings
    from natsflow_engine.observability import MetricsObserver
    from natsflow_engine.runtime.engine import Engine, EngineSettings
    from natsflow_engine.runtime.setup import LayoutSettings
    from natsflow_engine.triggers.server import TriggerServer

    def make(tenant: str, nc: Client) -> Sequence[Service]:
        engine = Engine(nc, settings or EngineSettings(), layout_settings=LayoutSettings(replicas=replicas), tenant=tenant)
        engine.observer = MetricsObserver(metrics)
        return [
            engine,
            ApiServer(nc, ApiSettings(replicas=replicas, tenant=tenant)),
            TriggerServer(nc, metrics=metrics, tenant=tenant),
        ]

    return make


def trigger_services(metrics: Metrics) -> ServiceFactory:
    from natsflow_engine.triggers.server import TriggerServer

    def make(tenant: str, nc: Client) -> Sequence[Service]:
        return [TriggerServer(nc, metrics=metrics, tenant=tenant)]

    return make


async def serve_tenant_accounts(
    obj: CliContext, directory: Path, services: ServiceFactory, health_port: int, metrics: Metrics
) -> None:
    """Serve the directory's tenants until SIGINT/SIGTERM. Ready once the directory was read;
    a tenant whose connection fails backs off on its own and does not make the replica unready
    (its state is in the log and the ``natsflow_tenant_connection_up`` gauge)."""
    if not directory.is_dir():
        raise NatsflowError(f"tenant credentials directory {directory} does not exist ({CREDENTIALS_DIR_ENV})")
    serving = TenantServing(directory, obj.nats_url, services, registry=metrics.registry)

    async def synced() -> bool:
        return serving.synced.is_set()

    async def any_ready() -> bool:
        tenants = serving.connections.tenants
        return not tenants or any(serving.connections.health(t).state is TenantState.READY for t in tenants)

    health = await serve_health(health_port, {"tenants": synced, "nats": any_ready}, metrics.registry)
    try:
        await serving.start()
        try:
            await until_stopped()
        finally:
            await serving.stop()
    finally:
        if health is not None:
            await health.stop()
