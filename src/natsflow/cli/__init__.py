"""The ``natsflow`` command line.

Every command takes ``--nats-url`` (or ``NATS_URL``), ``--creds`` (or ``NATS_CREDS``) and
``--tenant`` (or ``NATSFLOW_TENANT``), before or after the command name. Errors print one line
and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from natsflow.cli.common import GLOBAL_OPTIONS, CliContext, fail, global_option
from natsflow.errors import NatsflowError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--nats-url",
    envvar="NATS_URL",
    default="nats://127.0.0.1:4222",
    show_default=True,
    help="NATS server(s), comma separated.",
)
@click.option("--creds", envvar="NATS_CREDS", default=None, help="NATS credentials file (tenant account).")
@click.option(
    "--tenant",
    envvar="NATSFLOW_TENANT",
    default="default",
    show_default=True,
    help="Tenant (Kubernetes namespace) the command acts for.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--log-format",
    envvar="NATSFLOW_LOG_FORMAT",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@click.version_option(package_name="natsflow")
@click.pass_context
def cli(
    ctx: click.Context, nats_url: str, creds: str | None, tenant: str, debug: bool, log_format: str
) -> None:
    """BPMN 2.0 workflows on NATS JetStream."""
    try:
        from natsflow_engine.observability import configure_logging

        # --debug wins; else level=None: configure_logging reads NATSFLOW_LOG_LEVEL (default INFO).
        configure_logging(log_format, logging.DEBUG if debug else None)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover
        logging.basicConfig(level=logging.DEBUG if debug else logging.INFO)
    from natsflow_engine.tracing import configure_from_env

    configure_from_env(f"natsflow-{ctx.invoked_subcommand or 'cli'}")  # off unless OTEL_* ask for it
    ctx.obj = CliContext(nats_url=nats_url, creds=creds, tenant=tenant, debug=debug)


def _add(command: click.Command) -> None:
    """Register a subcommand; it also accepts the global connection options after its name
    (unless it declares its own with the same name, like ``apply``)."""
    own = {opt for param in command.params for opt in param.opts}
    for name in GLOBAL_OPTIONS:
        if f"--{name}" not in own:
            command.params.append(global_option(name))
    cli.add_command(command)


def _register() -> None:
    from natsflow.cli import console, run

    for command in run.COMMANDS + console.COMMANDS:
        _add(command)
    try:
        from natsflow.cli import client
    except ImportError:  # pragma: no cover - only while a module is missing in a source tree
        pass
    else:
        for command in client.COMMANDS:
            _add(command)
    try:
        from natsflow_operator import cli as operator_cli
    except ImportError:  # pragma: no cover
        pass
    else:
        for name in ("operator_cmd", "apply_cmd", "delete_cmd"):
            found = getattr(operator_cli, name, None)
            if isinstance(found, click.Command):
                _add(found)


_register()


def main(argv: list[str] | None = None) -> Any:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        return cli.main(args=argv, prog_name="natsflow", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except (NatsflowError, OSError) as exc:
        if debug:
            raise
        fail(str(exc))
    except Exception as exc:
        if debug:
            raise
        fail(f"{type(exc).__name__}: {exc}")
