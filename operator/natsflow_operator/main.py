"""Start the operator: Kopf settings, the handler registry, and the run loop.

``natsflow operator`` (:mod:`natsflow_operator.cli`) calls :func:`run_operator`; tests call
:func:`operator` inside their own event loop. Each run builds its own registry and context, so
no handler is registered at import time and two runs never share state.

Kopf runs standalone (no peering objects: one replica, or leader election by the Deployment's
``strategy: Recreate``), keeps its progress and diff-base in ``natsflow.io/*`` annotations (the
status holds only what our CRD schema declares), and uses the finalizer ``natsflow.io/finalizer``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any

import kopf
from natsflow_engine.observability import HealthServer

from natsflow_operator import taskdefinition, tenant, trigger, workflow
from natsflow_operator.context import OperatorConfig, OperatorContext

__all__ = ["FINALIZER", "OperatorConfig", "build_registry", "build_settings", "operator", "run_operator"]

log = logging.getLogger(__name__)

Flag = asyncio.Event | asyncio.Future[Any] | threading.Event | concurrent.futures.Future[Any]
"""What Kopf accepts as a stop or ready flag."""

FINALIZER = "natsflow.io/finalizer"


def build_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="natsflow.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="natsflow.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    # A timer (the drift check) running when its object is deleted holds the finalizer until
    # Kopf looks again: by default a minute later, which a deletion should not wait for.
    settings.background.cancellation_polling = 1.0
    return settings


def build_registry(ctx: OperatorContext) -> kopf.OperatorRegistry:
    """A fresh registry with every handler of the operator bound to ``ctx``."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(id="natsflow-login", registry=registry)
    async def login(**kwargs: Any) -> kopf.ConnectionInfo:
        info = ctx.config.kube
        if info is None:
            info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        if info is None:
            raise kopf.LoginError("no service account and no kubeconfig: cannot reach the Kubernetes API")
        ctx.kube.set_credentials(info)
        return info

    @kopf.on.cleanup(id="natsflow-cleanup", registry=registry)
    async def cleanup(**_: Any) -> None:
        # Close NATS before Kopf's last wait for leftover tasks (nats-py's readers would
        # otherwise hold it up); a handler still running afterwards gets a retryable error.
        await ctx.close()

    workflow.register(registry, ctx)
    taskdefinition.register(registry, ctx)
    trigger.register(registry, ctx)
    if ctx.accounts is not None:
        tenant.register(registry, ctx)
    return registry


async def operator(
    config: OperatorConfig,
    *,
    stop_flag: Flag | None = None,
    ready_flag: Flag | None = None,
    context: OperatorContext | None = None,
) -> None:
    """Run until ``stop_flag`` is set (or SIGINT/SIGTERM in the main thread).

    With ``config.health_port``, ``/healthz``, ``/readyz`` (ready once Kopf has logged in to the
    API server) and ``/metrics`` are served while the operator runs.
    """
    ctx = context or OperatorContext(config)
    health = None
    if config.health_port:
        health = HealthServer(port=config.health_port, registry=ctx.metrics.registry)
        health.add_check("kubernetes", ctx.kube.logged_in)
        await health.start()
    try:
        await kopf.operator(
            registry=build_registry(ctx),
            settings=build_settings(),
            standalone=True,
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        if health is not None:
            await health.stop()
        await ctx.close()


def run_operator(config: OperatorConfig) -> None:
    """Blocking entry point of ``natsflow operator``."""
    where = ", ".join(config.namespaces) if config.namespaces else "all namespaces"
    log.info("natsflow operator: serving %s, default NATS %s", where, config.nats_url.split("@")[-1])
    asyncio.run(operator(config))
