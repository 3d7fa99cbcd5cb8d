"""Commands that run components: ``engine``, ``worker``, ``dev``, ``demo``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import click
from natsflow_engine import layout
from natsflow_engine.liveness import ConnectionWatch, Liveness
from natsflow_engine.observability import Metrics, MetricsObserver
from natsflow_engine.runtime.engine import Engine
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.worker import Worker

from natsflow.cli.common import CliContext, fail, run
from natsflow.cli.health import ENGINE_HEALTH_PORT, health_port_option, serve_health
from natsflow.cli.lifecycle import raise_if_dead, serve, shut_down, until_stopped
from natsflow.cli.retention import engine_settings, retention_options
from natsflow.cli.tenants import engine_services, serve_tenant_accounts, tenant_credentials_option
from natsflow.errors import NatsflowError

__all__ = ["COMMANDS"]

log = logging.getLogger(__name__)


async def _optional_services(nc: Any, metrics: Metrics | None = None) -> list[Any]:
    """The API and trigger servers, where this build has them."""
    services: list[Any] = []
    with contextlib.suppress(ImportError):
        from natsflow_engine.api.server import ApiServer

        services.append(await ApiServer(nc).start())
    with contextlib.suppress(ImportError):
        from natsflow_engine.triggers.server import TriggerServer

        services.append(await TriggerServer(nc, metrics=metrics).start())
    return services


def _stopping(services: list[Any]) -> list[Awaitable[None]]:
    """The stop steps of ``services``, last started first."""
    return [service.stop() for service in reversed(services)]


@click.command("engine")
@click.option(
    "--replicas",
    "stream_replicas",
    type=int,
    default=1,
    show_default=True,
    help="Replication factor used when creating streams and buckets.",
)
@click.pass_obj
def engine_cmd(
    obj: CliContext,
    health_port: int,
    stream_replicas: int,
    tenant_credentials_dir: Path | None,
    retention_live: str,
    retention_archive: str,
) -> None:
    """Run an engine replica (start as many as you like)."""
    settings = engine_settings(retention_live, retention_archive)
    if tenant_credentials_dir is not None:  # one connection per tenant account
        metrics = Metrics()
        services = engine_services(metrics, stream_replicas, settings)
        serve(serve_tenant_accounts(obj, tenant_credentials_dir, services, health_port, metrics))
        return

    async def main() -> None:
        from natsflow_engine.runtime.setup import LayoutSettings

        watch = ConnectionWatch("engine")
        nc = await obj.connect(max_reconnect_attempts=-1, watch=watch)
        metrics = Metrics()
        engine = Engine(nc, settings, layout_settings=LayoutSettings(replicas=stream_replicas))
        engine.observer = MetricsObserver(metrics)

        async def connected() -> bool:
            return bool(nc.is_connected)

        up = asyncio.Event()  # set once the engine and its API and trigger servers run

        async def consuming() -> bool:
            return up.is_set() and engine.running

        try:  # the port first: a taken port fails before anything started
            health = await serve_health(
                health_port, {"nats": connected, "engine": consuming}, metrics.registry, watch.liveness
            )
        except NatsflowError:
            watch.liveness.stopping()
            await nc.close()
            raise
        await engine.start()
        services = await _optional_services(nc, metrics)
        up.set()
        log.info("engine running against %s", obj.nats_url)
        try:
            await until_stopped(watch.liveness)
        finally:
            await shut_down(
                watch.liveness,
                *([health.stop()] if health is not None else []),
                *_stopping(services),
                engine.stop(),
                nc.close(),
            )
        raise_if_dead(watch.liveness)

    serve(main())


engine_cmd.params.append(health_port_option(ENGINE_HEALTH_PORT))
engine_cmd.params.append(tenant_credentials_option())
engine_cmd.params.extend(retention_options())


def load_worker(spec: str) -> Worker:
    """The Worker named by ``FILE.py[:app]`` or ``MODULE[:app]`` (``app`` by default).

    A spec ending in ``.py`` or containing a ``/`` is a file path, loaded with its folder on
    ``sys.path``; anything else is a module path, imported with the current directory on
    ``sys.path``. Errors say which of the two was tried."""
    where, sep, attr = spec.rpartition(":")
    if not sep:
        where, attr = spec, "app"
    if not where:
        raise NatsflowError(f"worker app {spec!r} should look like 'module:app' or 'path/to/file.py:app'")
    if where.endswith(".py") or "/" in where or os.sep in where:
        path = Path(where)
        if not path.is_file():
            raise NatsflowError(f"worker file {where} not found (tried {spec!r} as a file path)")
        sys.path.insert(0, str(path.parent.resolve()))
        module_name, tried = path.stem, f"file {where}"
    else:
        sys.path.insert(0, os.getcwd())
        module_name, tried = where, f"module {where} (from the current directory and sys.path)"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = "" if tried.startswith("file") else "; for a file, give its path, like ./workers.py:app"
        raise NatsflowError(f"cannot import worker {tried}: {exc}{hint}") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, Worker):
        raise NatsflowError(
            f"{attr!r} in {tried} is not a natsflow.worker.Worker (found {type(app).__name__})"
        )
    return app


@click.command("worker")
@click.argument("app_spec", metavar="MODULE[:APP]|FILE.py[:APP]")
@click.option(
    "--task-type",
    envvar="NATSFLOW_TASK_TYPE",
    default=None,
    help="Serve only this task type (the operator sets it per TaskDefinition).",
)
@click.option(
    "--js-domain",
    envvar="NATSFLOW_JS_DOMAIN",
    default=None,
    help="JetStream domain of the platform's servers, for a worker at a remote site behind a leaf node.",
)
@click.pass_obj
def worker_cmd(obj: CliContext, app_spec: str, task_type: str | None, js_domain: str | None) -> None:
    """Run the job handlers of a worker app (a natsflow.worker.Worker, ``app`` by default)."""
    app = load_worker(app_spec)
    if js_domain:
        app.js_domain = js_domain
    if task_type:
        if task_type not in app.task_types:
            fail(
                f"{app_spec} has no handler for task type {task_type!r} (it has: {', '.join(app.task_types)})"
            )
        app.keep_only(task_type)

    async def main() -> None:
        app.tenant = layout.validate_tenant(obj.tenant)
        watch = ConnectionWatch("worker")
        nc = app.nc = await obj.connect(max_reconnect_attempts=-1, watch=watch)
        await app.start()
        log.info("worker serving %s against %s", ", ".join(app.task_types), obj.nats_url)
        try:
            await until_stopped(watch.liveness)
        finally:
            await shut_down(watch.liveness, app.stop(), nc.close())
        raise_if_dead(watch.liveness)

    serve(main())


async def _watch_server(server: EmbeddedNatsServer, liveness: Liveness, every: float = 0.5) -> None:
    """``natsflow dev`` ends (non-zero) when its own nats-server ends: nothing would work."""
    # a child process has no awaitable exit that works on every loop (uvloop) and platform
    while (code := server.returncode) is None:  # noqa: ASYNC110
        await asyncio.sleep(every)
    liveness.fail(f"natsflow dev: its nats-server exited (code {code}); stopping")


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
@click.option(
    "--console-port", type=int, default=8088, show_default=True, help="Web console port (0: a free one)."
)
@click.pass_obj
def dev_cmd(
    obj: CliContext,
    port: int,
    store: Path | None,
    deploy_files: tuple[Path, ...],
    worker_specs: tuple[str, ...],
    console_port: int,
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

        watch = ConnectionWatch("natsflow dev")
        nc = watch.attach(
            await nats.connect(server.url, max_reconnect_attempts=-1, closed_cb=watch.on_closed)
        )
        watching = asyncio.create_task(_watch_server(server, watch.liveness), name="natsflow-dev-server")
        engine = await Engine(nc).start()
        services = await _optional_services(nc)
        buckets = await open_buckets(nc.jetstream())
        for file in deploy_files:
            for d in await deploy_definitions(buckets[layout.BUCKET_WORKFLOWS], obj.tenant, file):
                click.echo(f"deployed {d.process_id} version {d.version}")
        for app in workers:
            app.nc, app.tenant = nc, obj.tenant
            await app.start()
        from natsflow.cli.console import start_dev_console

        console, console_url = await start_dev_console(nc, obj.tenant, console_port)
        click.echo(f"natsflow dev: NATS listens on {server.url} (export NATS_URL={server.url}); Ctrl-C stops")
        click.echo(f"natsflow dev: console on {console_url}")
        try:
            await until_stopped(watch.liveness)
        finally:
            watching.cancel()
            await shut_down(
                watch.liveness,
                console.stop(),
                *(app.stop() for app in workers),
                *_stopping(services),
                engine.stop(),
                nc.close(),
            )
        raise_if_dead(watch.liveness)

    try:
        serve(main())
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
