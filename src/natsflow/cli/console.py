"""``natsflow console``: serve the web console; the console of ``natsflow dev``."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import click
import msgspec
from natsflow_console import Console, ConsoleSettings, load_users
from natsflow_console.auth import AuthError, Users, dev_users
from natsflow_engine.accounts.directory import TenantServing
from natsflow_engine.liveness import ConnectionWatch
from prometheus_client import CollectorRegistry

from natsflow.cli.common import CliContext, fail, run
from natsflow.cli.lifecycle import raise_if_dead, serve, shut_down, until_stopped
from natsflow.cli.tenants import tenant_credentials_option

__all__ = ["COMMANDS", "start_dev_console"]


@click.command("console")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8088, show_default=True, help="Port to listen on.")
@click.option(
    "--users",
    "users_file",
    envvar="NATSFLOW_CONSOLE_USERS_FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML/JSON users document (name, token, tenant, role, groups); also NATSFLOW_CONSOLE_USERS.",
)
@click.option(
    "--proxy-user-header",
    envvar="NATSFLOW_CONSOLE_PROXY_USER_HEADER",
    default=None,
    help="Trust this header for the user name (only behind an authenticating reverse proxy).",
)
@click.option("--secure-cookie", is_flag=True, envvar="NATSFLOW_CONSOLE_SECURE_COOKIE", help="HTTPS only.")
@click.pass_obj
def console_cmd(
    obj: CliContext,
    host: str,
    port: int,
    users_file: Path | None,
    proxy_user_header: str | None,
    secure_cookie: bool,
    tenant_credentials_dir: Path | None,
) -> None:
    """Serve the web console: instances, processes, incidents and user tasks, live."""
    try:
        users = load_users(users_file)
    except (AuthError, OSError) as exc:
        fail(str(exc))
    if not len(users):
        fail("no console users: pass --users FILE or set NATSFLOW_CONSOLE_USERS (see docs/console.md)")
    settings = ConsoleSettings(
        host=host, port=port, proxy_user_header=proxy_user_header, secure_cookie=secure_cookie
    )

    async def main() -> None:
        if tenant_credentials_dir is not None:  # each user acts with their tenant's connection
            await _serve_tenant_accounts(obj, tenant_credentials_dir, users, settings)
            return
        watch = ConnectionWatch("console")
        nc = await obj.connect(max_reconnect_attempts=-1, watch=watch)
        console = await Console(nc, users, settings).start()
        click.echo(f"natsflow console on {console.url} ({len(users)} users) against {obj.nats_url}", err=True)
        try:
            await until_stopped(watch.liveness)
        finally:
            await shut_down(watch.liveness, console.stop(), nc.close())
        raise_if_dead(watch.liveness)

    serve(main())


console_cmd.params.append(tenant_credentials_option())


async def _serve_tenant_accounts(obj: CliContext, directory: Path, users: Users, settings: ConsoleSettings) -> None:
    registry = CollectorRegistry()  # natsflow_tenant_connection_up and _failures_total on /metrics
    serving = await TenantServing(directory, obj.nats_url, lambda tenant, nc: [], registry=registry).start()
    try:
        console = await Console(None, users, settings, tenants=serving.connections, registry=registry).start()
        click.echo(f"natsflow console on {console.url} ({len(users)} users), tenants from {directory}", err=True)
        try:
            await until_stopped()
        finally:
            await console.stop()
    finally:
        await serving.stop()


async def start_dev_console(nc: Any, tenant: str, port: int) -> tuple[Console, str]:
    """The console of ``natsflow dev``: loopback only, one operator with a token made now;
    returns it and the sign-in URL (the token after ``#`` never reaches a server log)."""
    token = secrets.token_urlsafe(24)
    console = await Console(nc, dev_users(tenant, token), ConsoleSettings(port=port)).start()
    return console, f"{console.url}/login#token={token}"


@click.command("simulate")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--scenario",
    "scenario_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Scenario (YAML or JSON): start variables, mocks per task type, user tasks, events with times.",
)
@click.option("--export-test", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the run (one instance) as a pytest module using natsflow.testing.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def simulate_cmd(model: Path, scenario_file: Path | None, export_test: Path | None, output: str) -> None:
    """Run MODEL headless on an embedded engine with a virtual clock (nothing touches NATS
    servers of yours): print the path and the final variables."""
    import yaml
    from natsflow_console.export import pytest_module
    from natsflow_console.simulation import ScenarioError, parse_scenario, simulate

    from natsflow.cli.common import emit_json
    from natsflow.errors import NatsflowError

    where = str(scenario_file) if scenario_file else "scenario"
    try:
        document = yaml.safe_load(scenario_file.read_text()) if scenario_file else {}
        scenario = parse_scenario(document)
        source = model.read_bytes().decode("utf-8-sig")
    except yaml.YAMLError as exc:
        fail(f"{where}: not YAML or JSON: {str(exc).splitlines()[0]}")
    except ScenarioError as exc:
        fail(f"{where}: {exc}")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{model}: {exc}")
    if export_test is not None:
        scenario.instances = 1
    try:
        result = run(simulate(source, scenario, name=model.name))
    except NatsflowError as exc:
        fail(f"{model}: {exc}")
    if export_test is not None:
        export_test.write_text(pytest_module(source, scenario.variables, result))
    if output == "json":
        emit_json(msgspec.to_builtins(result))
        return
    first = result.first
    states = ", ".join(f"{n} {state}" for state, n in sorted(result.states.items()))
    click.echo(f"{result.process_id}: {result.instances} instance(s): {states} (virtual time {result.virtual_time})")
    click.echo("path: " + " -> ".join(first.path))
    click.echo(f"state: {first.state}")
    for incident in first.incidents:
        click.echo(f"incident at {incident['element_id']}: {incident['message']}")
    if first.waiting:
        click.echo("waiting at: " + ", ".join(first.waiting))
    click.echo("variables: " + json.dumps(first.variables, sort_keys=True))
    if result.instances > 1:
        counts = ", ".join(f"{el} {n}" for el, n in sorted(result.elements.items(), key=lambda kv: (-kv[1], kv[0])))
        click.echo(f"instances per element: {counts}")


COMMANDS = [console_cmd, simulate_cmd]
