"""Commands that run components: ``engine``, ``worker``, ``dev``, ``demo``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
from natsflow_engine import layout
from natsflow_engine.runtime.engine import Engine, EngineSettings
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.worker import Worker

from natsflow.cli.common import CliContext, fail, run
from natsflow.errors import NatsflowError

__all__ = ["COMMANDS"]

log = logging.getLogger(__name__)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _optional_services(nc: Any, tenant: str | None) -> list[Any]:
    """The API and trigger servers, where this build has them."""
    services: list[Any] = []
    with contextlib.suppress(ImportError):
        from natsflow_engine.api.server import ApiServer

        services.append(await ApiServer(nc).start())
    with contextlib.suppress(ImportError):
        from natsflow_engine.triggers.server import TriggerServer

        services.append(await TriggerServer(nc).start())
    return services


async def _stop_all(services: list[Any]) -> None:
    for service in reversed(services):
        with contextlib.suppress(Exception):
            await service.stop()


@click.command("engine")
@click.option(
    "--health-port",
    type=int,
    default=8080,
    show_default=True,
    envvar="NATSFLOW_HEALTH_PORT",
    help="Port of /healthz, /readyz and /metrics (0: off).",
)
@click.option(
    "--replicas",
    "stream_replicas",
    type=int,
    default=1,
    show_default=True,
    help="Replication factor used when creating streams and buckets.",
)
@click.pass_obj
def engine_cmd(obj: CliContext, health_port: int, stream_replicas: int) -> None:
    """Run an engine replica (start as many as you like)."""

    async def main() -> None:
        from natsflow_engine.runtime.setup import LayoutSettings

        nc = await obj.connect(max_reconnect_attempts=-1)
        engine = await Engine(
            nc, EngineSettings(), layout_settings=LayoutSettings(replicas=stream_replicas)
        ).start()
        services = await _optional_services(nc, None)
        health = await _health(health_port, nc, engine)
        click.echo(f"engine running against {obj.nats_url}", err=True)
        try:
            await _until_signalled()
        finally:
            if health is not None:
                await health.stop()
            await _stop_all(services)
            await engine.stop()
            await nc.close()

    run(main())


async def _health(port: int, nc: Any, engine: Engine | None) -> Any:
    if not port:
        return None
    try:
        from natsflow_engine.observability import HealthServer
    except ImportError:  # pragma: no cover
        return None
    server = HealthServer("0.0.0.0", port)

    async def connected() -> bool:
        return bool(nc.is_connected)

    server.add_check("nats", connected)
    if engine is not None:

        async def consuming() -> bool:
            return engine.running

        server.add_check("engine", consuming)
    await server.start()
    return server


def load_worker(spec: str) -> Worker:
    """Import ``module:attribute`` (the current directory is importable) and return the Worker."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise NatsflowError(f"worker app {spec!r} should look like 'module:app'")
    sys.path.insert(0, os.getcwd())
    path = Path(module_name)
    if path.suffix == ".py" and path.exists():
        sys.path.insert(0, str(path.parent.resolve()))
        module_name = path.stem
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise NatsflowError(f"cannot import worker module {module_name!r}: {exc}") from exc
    app = getattr(module, attr or "app", None)
    if not isinstance(app, Worker):
        raise NatsflowError(f"{spec!r} is not a natsflow.worker.Worker (found {type(app).__name__})")
    return app


@click.command("worker")
@click.argument("app_spec", metavar="MODULE:APP")
@click.option(
    "--task-type",
    envvar="NATSFLOW_TASK_TYPE",
    default=None,
    help="Serve only this task type (the operator sets it per TaskDefinition).",
)
@click.pass_obj
def worker_cmd(obj: CliContext, app_spec: str, task_type: str | None) -> None:
    """Run the job handlers of a worker app (a natsflow.worker.Worker in MODULE)."""
    app = load_worker(app_spec)
    if task_type:
        if task_type not in app.task_types:
            fail(
                f"{app_spec} has no handler for task type {task_type!r} (it has: {', '.join(app.task_types)})"
            )
        app.keep_only(task_type)

    async def main() -> None:
        app.tenant = layout.validate_tenant(obj.tenant)
        app.nc = await obj.connect(max_reconnect_attempts=-1)
        await app.start()
        click.echo(f"worker serving {', '.join(app.task_types)} against {obj.nats_url}", err=True)
        try:
            await _until_signalled()
        finally:
            await app.stop()
            if app.nc is not None:
                await app.nc.close()

    run(main())


@click.command("dev")
@click.option("--port", type=int, default=4222, show_default=True, help="NATS port (0: a free one).")
@click.option(
    "--store",
    type=click.Path(path_type=Path),
    default=None,
    help="JetStream directory (default: a temporary one, removed at exit).",
)
@click.option(
    "--deploy",
    "deploy_files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="BPMN files to deploy at start.",
)
@click.option(
    "--worker", "worker_specs", multiple=True, metavar="MODULE:APP", help="Worker apps to run in-process."
)
@click.pass_obj
def dev_cmd(
    obj: CliContext,
    port: int,
    store: Path | None,
    deploy_files: tuple[Path, ...],
    worker_specs: tuple[str, ...],
) -> None:
    """Everything on one laptop: nats-server, engine, API, trigger server and workers."""
    workers = [load_worker(spec) for spec in worker_specs]
    server = EmbeddedNatsServer(port=port or None, store_dir=store)
    try:
        server.start()
    except NatsflowError as exc:
        fail(f"{exc} (is port {port} taken? try --port 0)")

    async def main() -> None:
        import nats
        from natsflow_engine.runtime.definitions import deploy_definitions
        from natsflow_engine.runtime.setup import open_buckets

        nc = await nats.connect(server.url)
        engine = await Engine(nc).start()
        services = await _optional_services(nc, obj.tenant)
        buckets = await open_buckets(nc.jetstream())
        for file in deploy_files:
            for d in await deploy_definitions(buckets[layout.BUCKET_WORKFLOWS], obj.tenant, file):
                click.echo(f"deployed {d.process_id} version {d.version}")
        for app in workers:
            app.nc, app.tenant = nc, obj.tenant
            await app.start()
        click.echo(f"natsflow dev: NATS listens on {server.url} (export NATS_URL={server.url}); Ctrl-C stops")
        try:
            await _until_signalled()
        finally:
            for app in workers:
                await app.stop()
            await _stop_all(services)
            await engine.stop()
            await nc.close()

    try:
        run(main())
    finally:
        server.close()


@click.command("demo")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("examples/order-fulfilment"))
@click.option("--instances", "count", type=int, default=20, show_default=True, help="Orders to run.")
@click.option("--timeout", type=float, default=60.0, show_default=True)
@click.pass_obj
def demo_cmd(obj: CliContext, directory: Path, count: int, timeout: float) -> None:
    """Run the order-fulfilment example end to end on an embedded NATS server and print the result."""
    from natsflow.cli.demo import run_demo

    if not directory.is_dir():
        fail(f"example directory {directory} not found (run from the repository root, or pass the directory)")
    ok = run(run_demo(directory, count=count, timeout=timeout, tenant=obj.tenant))
    if not ok:
        sys.exit(1)


COMMANDS = [engine_cmd, worker_cmd, dev_cmd, demo_cmd]
