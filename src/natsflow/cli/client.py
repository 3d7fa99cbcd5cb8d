"""Client commands: talk to a running natsflow through its NATS request-reply API only.

``deploy``, ``workflows``, ``start``, ``instances``, ``show``, ``watch``, ``cancel``, ``tasks``,
``complete-task``, ``claim-task``, ``incidents``, ``resolve``, ``publish-message``,
``broadcast-signal``, ``evaluate-conditions``, ``triggers`` -- and ``trigger-server``, which runs the trigger server.

Listing and showing commands take ``-o json``: exactly one JSON document on stdout.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
from natsflow_engine.api.client import ApiClient
from natsflow_engine.liveness import ConnectionWatch

from natsflow.cli import render
from natsflow.cli.common import CliContext, emit_json, run
from natsflow.cli.health import TRIGGER_SERVER_HEALTH_PORT, health_port_option, serve_health
from natsflow.cli.lifecycle import raise_if_dead, serve, shut_down, until_stopped
from natsflow.cli.support import all_instances, live_instances, parse_duration, parse_variables
from natsflow.cli.tenants import tenant_credentials_option
from natsflow.errors import NatsflowError

__all__ = ["COMMANDS"]

log = logging.getLogger(__name__)

T = TypeVar("T")

output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON document on stdout.",
)
vars_option = click.option(
    "--vars", "variables", default=None, metavar="JSON", help="Variables as a JSON object, or @FILE with one."
)


def _call(obj: CliContext, work: Callable[[ApiClient], Awaitable[T]]) -> T:
    """Connect, run ``work`` with an ApiClient for the tenant, disconnect."""

    async def main() -> T:
        nc = await obj.connect()
        try:
            return await work(ApiClient(nc, obj.tenant))
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    return run(main())


def _emit(output: str, document: Any, text: str) -> None:
    if output == "json":
        emit_json(msgspec.to_builtins(document))
    else:
        click.echo(text)


# --- workflows --------------------------------------------------------------------------------


@click.command("deploy")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@output_option
@click.pass_obj
def deploy_cmd(obj: CliContext, files: tuple[Path, ...], output: str) -> None:
    """Deploy BPMN files (and Camunda ``.form`` files) in order (a new version only where the
    content changed).

    A file that fails stops the command: the error names it, and says which files were
    deployed before it and which were not tried."""

    async def work(api: ApiClient) -> list[dict[str, Any]]:
        done: list[dict[str, Any]] = []
        for n, file in enumerate(files):
            try:
                source = file.read_bytes().decode("utf-8-sig")
                if file.suffix == ".form":
                    form = await api.deploy_form(source, name=file.name)
                    done.append({"file": str(file), **msgspec.to_builtins(form)})
                    continue
                deployed = await api.deploy(source, name=file.name)
            except (NatsflowError, UnicodeDecodeError, OSError) as exc:
                raise NatsflowError(_deploy_failure(file, exc, files[:n], files[n + 1 :])) from exc
            done += [{"file": str(file), **msgspec.to_builtins(d)} for d in deployed]
        return done

    deployed = _call(obj, work)
    lines = [
        (d["process_id"] if "process_id" in d else f"form {d['form_id']}") + f" version {d['version']}"
        + ("" if d["created"] else " (unchanged)")
        + f"  <- {d['file']}"
        for d in deployed
    ]
    _emit(output, deployed, "\n".join(lines) or "nothing executable to deploy")


def _deploy_failure(file: Path, exc: Exception, before: tuple[Path, ...], after: tuple[Path, ...]) -> str:
    reason = f"not UTF-8 text ({exc.reason})" if isinstance(exc, UnicodeDecodeError) else str(exc)
    text = f"{file}: {reason}"
    if before:
        text += f"; deployed before it: {', '.join(map(str, before))}"
    if after:
        text += f"; not deployed: {', '.join(map(str, after))}"
    return text


@click.command("workflows")
@output_option
@click.pass_obj
def workflows_cmd(obj: CliContext, output: str) -> None:
    """List deployed workflows (latest version of each process)."""
    workflows = _call(obj, lambda api: api.workflows())
    _emit(output, workflows, render.workflows_table(workflows))


# --- instances --------------------------------------------------------------------------------


@click.command("start")
@click.argument("process_id", metavar="PROCESS")
@vars_option
@click.option("--key", default=None, help="Idempotency key: the same key never starts a second instance.")
@click.option(
    "--business-key", default=None, help="Business key, searchable with `instances --business-key`."
)
@click.option("--version", type=int, default=None, help="Process version (default: the latest).")
@output_option
@click.pass_obj
def start_cmd(
    obj: CliContext,
    process_id: str,
    variables: str | None,
    key: str | None,
    business_key: str | None,
    version: int | None,
    output: str,
) -> None:
    """Start an instance of PROCESS."""
    values = parse_variables(variables)
    reply = _call(
        obj,
        lambda api: api.start(
            process_id, values, key=key, business_key=business_key, version=version, wait=True
        ),
    )
    _emit(
        output,
        reply,
        reply.instance + ("  (duplicate: started before with this key)" if reply.duplicate else ""),
    )


@click.command("instances")
@click.option("--process", "process_id", default=None, help="Only instances of this process.")
@click.option("--state", type=click.Choice(["active", "completed", "cancelled", "failed"]), default=None)
@click.option("--business-key", default=None)
@click.option("--version", "process_version", type=int, default=None, help="Only this process version.")
@click.option("--incidents/--no-incidents", default=None, help="Only active instances with (without) incidents.")
@click.option("--started-after", default=None, help="ISO 8601 time with a zone, e.g. 2026-12-04T10:00:00Z.")
@click.option("--started-before", default=None, help="ISO 8601 time with a zone.")
@click.option(
    "--var", "variables", multiple=True, metavar="NAME=JSON",
    help="A searchable variable's value (repeatable), e.g. --var region='\"eu\"' or --var amount=10.",
)
@click.option("--limit", type=int, default=200, show_default=True, help="At most this many instances.")
@click.option("--watch", "live", is_flag=True, help="Keep the table up to date as instances move.")
@click.option(
    "--duration", type=float, default=0.0, help="With --watch: stop after this many seconds (0: never)."
)
@output_option
@click.pass_obj
def instances_cmd(
    obj: CliContext,
    process_id: str | None,
    state: str | None,
    business_key: str | None,
    process_version: int | None,
    incidents: bool | None,
    started_after: str | None,
    started_before: str | None,
    variables: tuple[str, ...],
    limit: int,
    live: bool,
    duration: float,
    output: str,
) -> None:
    """List instances from the instance index, in the order of their last change of state."""
    filters: dict[str, Any] = {"process_id": process_id, "state": state, "business_key": business_key}
    extra = {"version": process_version, "incidents": incidents, "started_after": started_after,
             "started_before": started_before, "variables": _searchable(variables)}
    filters.update({k: v for k, v in extra.items() if v is not None})
    if live and output == "json":
        raise click.UsageError("--watch draws a live table; it cannot be combined with -o json")
    if not live:
        found = _call(obj, lambda api: all_instances(api, limit, **filters))
        _emit(output, found, render.instances_table(found))
        return
    _call(obj, lambda api: live_instances(api, limit, duration, filters, click.echo))


def _searchable(pairs: tuple[str, ...]) -> dict[str, Any] | None:
    """``NAME=JSON`` pairs (a value that is not JSON is taken as a string)."""
    if not pairs:
        return None
    found: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r}: use NAME=VALUE", param_hint="--var")
        try:
            found[name] = json.loads(text)
        except ValueError:
            found[name] = text
    return found


@click.command("show")
@click.argument("instance")
@click.option("--no-history", is_flag=True, help="Leave out the history.")
@output_option
@click.pass_obj
def show_cmd(obj: CliContext, instance: str, no_history: bool, output: str) -> None:
    """Show an instance: state, variables, active elements, incidents, history."""

    async def work(api: ApiClient) -> tuple[Any, list[Any]]:
        view = await api.instance(instance)
        return view, [] if no_history else (await api.history(instance)).records

    view, history = _call(obj, work)
    document = {**msgspec.to_builtins(view), "history": msgspec.to_builtins(history)}
    _emit(output, document, render.instance_detail(view, history))


@click.command("watch")
@click.argument("instance")
@click.pass_obj
def watch_cmd(obj: CliContext, instance: str) -> None:
    """Print the history of an instance as it happens, until the instance ends."""

    async def work(api: ApiClient) -> str:
        state = "active"
        async for record in api.watch(instance):
            for line in render.history_lines(record):
                click.echo(line)
            state = record.state
        return state

    click.echo(f"instance {instance} {_call(obj, work)}")


@click.command("cancel")
@click.argument("instance")
@click.option("--reason", default="", help="Recorded in the history.")
@click.pass_obj
def cancel_cmd(obj: CliContext, instance: str, reason: str) -> None:
    """Cancel an active instance."""
    _call(obj, lambda api: api.cancel(instance, reason))
    click.echo(f"cancelling {instance}")


# --- user tasks and incidents -----------------------------------------------------------------


@click.command("tasks")
@click.argument("instance", required=False)
@click.option("--assignee", default=None, help="Only tasks assigned to this user.")
@output_option
@click.pass_obj
def tasks_cmd(obj: CliContext, instance: str | None, assignee: str | None, output: str) -> None:
    """List open user tasks (of one INSTANCE, or of every instance)."""
    tasks = _call(obj, lambda api: api.tasks(instance, assignee=assignee))
    _emit(output, tasks, render.tasks_table(tasks))


@click.command("complete-task")
@click.argument("task_id", metavar="ID")
@vars_option
@click.pass_obj
def complete_task_cmd(obj: CliContext, task_id: str, variables: str | None) -> None:
    """Complete a user task, optionally setting variables."""
    values = parse_variables(variables)
    reply = _call(obj, lambda api: api.complete_task(task_id, values))
    click.echo(f"completed {reply.id} (instance {reply.instance})")


@click.command("claim-task")
@click.argument("task_id", metavar="ID")
@click.argument("assignee")
@click.option("--force", is_flag=True, help="Take the task over from its current assignee.")
@output_option
@click.pass_obj
def claim_task_cmd(obj: CliContext, task_id: str, assignee: str, force: bool, output: str) -> None:
    """Assign a user task to ASSIGNEE (refused when someone else holds it, unless --force)."""
    task = _call(obj, lambda api: api.claim_task(task_id, assignee, force=force))
    _emit(output, task, f"{task.id} assigned to {task.assignee}")


@click.command("incidents")
@click.option("--instance", default=None, help="Only incidents of this instance.")
@click.option("--process", "process_id", default=None, help="Only incidents of this process.")
@output_option
@click.pass_obj
def incidents_cmd(obj: CliContext, instance: str | None, process_id: str | None, output: str) -> None:
    """List open incidents."""
    incidents = _call(obj, lambda api: api.incidents(instance, process_id=process_id))
    _emit(output, incidents, render.incidents_table(incidents))


@click.command("resolve")
@click.argument("incident")
@vars_option
@click.pass_obj
def resolve_cmd(obj: CliContext, incident: str, variables: str | None) -> None:
    """Resolve an incident: retry the failed step (optionally with corrected variables)."""
    values = parse_variables(variables)
    reply = _call(obj, lambda api: api.resolve_incident(incident, values))
    click.echo(f"resolving {reply.id} (instance {reply.instance})")


# --- messages, signals, triggers --------------------------------------------------------------


@click.command("publish-message")
@click.argument("name")
@click.option(
    "--correlation-key",
    "correlation_key",
    default="",
    help="Correlation key: the value the waiting instance subscribed with.",
)
@vars_option
@click.option("--ttl", default="0s", show_default=True, help="Buffer the message this long (10s, 5m, ...).")
@click.option("--id", "message_id", default=None, help="Message id: republishing the same id has no effect.")
@click.pass_obj
def publish_message_cmd(
    obj: CliContext, name: str, correlation_key: str, variables: str | None, ttl: str, message_id: str | None
) -> None:
    """Publish a message to the instance waiting for NAME with the correlation key."""
    values, seconds = parse_variables(variables), parse_duration(ttl)
    reply = _call(
        obj,
        lambda api: api.publish_message(
            name, correlation_key=correlation_key, variables=values, ttl=seconds, message_id=message_id
        ),
    )
    click.echo(f"published message {name}{_reached(reply.detail)}")


@click.command("broadcast-signal")
@click.argument("name")
@vars_option
@click.pass_obj
def broadcast_signal_cmd(obj: CliContext, name: str, variables: str | None) -> None:
    """Broadcast signal NAME to every instance waiting for it."""
    values = parse_variables(variables)
    reply = _call(obj, lambda api: api.broadcast_signal(name, values))
    click.echo(f"broadcast signal {name}{_reached(reply.detail)}")


@click.command("evaluate-conditions")
@vars_option
@click.option("--process", "process_id", default=None, help="Only this process's conditional start events.")
@click.option("--id", "evaluation_id", default=None, help="Evaluation id: repeating the same id starts nothing twice.")
@click.option("--max-starts", default=100, show_default=True, help="Start nothing when more events than this hold.")
@output_option
@click.pass_obj
def evaluate_conditions_cmd(
    obj: CliContext, variables: str | None, process_id: str | None, evaluation_id: str | None, max_starts: int,
    output: str,
) -> None:
    """Start an instance at each process-level conditional start event whose condition holds
    for the variables."""
    values = parse_variables(variables)
    reply = _call(
        obj,
        lambda api: api.evaluate_conditions(
            values, process_id=process_id, evaluation_id=evaluation_id, max_starts=max_starts
        ),
    )
    lines = [f"started {s.instance} ({s.process_id} v{s.version}, {s.start_event})" for s in reply.started]
    lines += [f"not evaluated: {f.process_id} v{f.version}, {f.start_event}: {f.error}" for f in reply.failed]
    _emit(output, reply, "\n".join(lines) if lines else "no conditional start event holds")


def _reached(detail: Any) -> str:
    reached = detail.get("reached") if isinstance(detail, dict) else None
    return "" if reached is None else f" (reached {reached} waiting catch(es) or start(s))"


@click.command("triggers")
@output_option
@click.pass_obj
def triggers_cmd(obj: CliContext, output: str) -> None:
    """List triggers with their counters (merged across trigger-server replicas)."""
    triggers = _call(obj, lambda api: api.triggers())
    _emit(output, triggers, render.triggers_table(triggers))


@click.command("trigger-server")
@click.pass_obj
def trigger_server_cmd(obj: CliContext, health_port: int, tenant_credentials_dir: Path | None) -> None:
    """Run a trigger server: NATS messages start workflow instances (run as many as you like)."""
    from natsflow_engine.observability import Metrics
    from natsflow_engine.triggers.server import TriggerServer

    from natsflow.cli.tenants import serve_tenant_accounts, trigger_services

    if tenant_credentials_dir is not None:  # one connection per tenant account
        metrics = Metrics()
        serve(serve_tenant_accounts(obj, tenant_credentials_dir, trigger_services(metrics), health_port, metrics))
        return

    async def main() -> None:
        watch = ConnectionWatch("trigger server")
        nc = await obj.connect(max_reconnect_attempts=-1, watch=watch)
        metrics = Metrics()
        server = TriggerServer(nc, metrics=metrics)

        async def ready() -> bool:
            return bool(nc.is_connected) and server.running

        try:  # the port first: a taken port fails before anything started
            health = await serve_health(health_port, {"triggers": ready}, metrics.registry, watch.liveness)
        except NatsflowError:
            watch.liveness.stopping()
            await nc.close()
            raise
        await server.start()
        log.info("trigger server running against %s", obj.nats_url)
        try:
            await until_stopped(watch.liveness)
        finally:
            await shut_down(
                watch.liveness, *([health.stop()] if health is not None else []), server.stop(), nc.close()
            )
        raise_if_dead(watch.liveness)

    serve(main())


trigger_server_cmd.params.append(health_port_option(TRIGGER_SERVER_HEALTH_PORT))
trigger_server_cmd.params.append(tenant_credentials_option())

COMMANDS: list[click.Command] = [
    deploy_cmd,
    workflows_cmd,
    start_cmd,
    instances_cmd,
    show_cmd,
    watch_cmd,
    cancel_cmd,
    tasks_cmd,
    complete_task_cmd,
    claim_task_cmd,
    incidents_cmd,
    resolve_cmd,
    publish_message_cmd,
    broadcast_signal_cmd,
    evaluate_conditions_cmd,
    triggers_cmd,
    trigger_server_cmd,
]
