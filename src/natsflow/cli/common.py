"""Shared pieces of the command line: connection settings, running coroutines, output."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click
import nats
from nats.aio.client import Client
from natsflow_engine import gcpolicy, layout
from natsflow_engine.liveness import ConnectionWatch

from natsflow.errors import ConnectionFailedError

__all__ = ["GLOBAL_OPTIONS", "CliContext", "emit_json", "fail", "global_option", "inbox_prefix", "run"]

T = TypeVar("T")
log = logging.getLogger(__name__)

GLOBAL_OPTIONS = {
    "nats-url": "NATS server(s), comma separated [default: the group's, NATS_URL].",
    "creds": "NATS credentials file [default: the group's, NATS_CREDS].",
    "tenant": "Tenant the command acts for [default: the group's, NATSFLOW_TENANT].",
}
"""Options of the ``natsflow`` group that every subcommand also accepts after its name."""

NATS_HINT = "start a local one with `natsflow dev`, or point --nats-url (NATS_URL) at yours"


def global_option(name: str) -> click.Option:
    """``--NAME`` on a subcommand: when given, it overrides the group's value in ``ctx.obj``."""

    def override(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None and isinstance(ctx.obj, CliContext):
            setattr(ctx.obj, name.replace("-", "_"), value)

    return click.Option(
        [f"--{name}"], default=None, expose_value=False, callback=override, help=GLOBAL_OPTIONS[name]
    )


@dataclass
class CliContext:
    nats_url: str
    creds: str | None
    tenant: str
    debug: bool

    async def connect(
        self, *, max_reconnect_attempts: int = 3, watch: ConnectionWatch | None = None
    ) -> Client:
        """Connect, trying each server a few times; unreachable NATS is one error line with a
        hint, never a traceback per attempt. ``max_reconnect_attempts`` applies once connected
        (-1: reconnect for ever, for long-running components); ``watch`` learns when the
        connection is closed for good."""
        layout.validate_tenant(self.tenant)
        failures: list[str] = []
        connected = False

        async def quiet(exc: Exception) -> None:
            failures.append(str(exc) or type(exc).__name__)
            # while connecting: the final error says it; later: one line per error, no traceback
            log.log(logging.WARNING if connected else logging.DEBUG, "NATS connection error: %s", exc)

        try:
            nc = await nats.connect(
                servers=self.nats_url.split(","),
                user_credentials=self.creds,
                inbox_prefix=inbox_prefix(),
                connect_timeout=5,
                reconnect_time_wait=1,
                max_reconnect_attempts=2,
                allow_reconnect=True,
                error_cb=quiet,
                closed_cb=watch.on_closed if watch is not None else None,
            )
        except Exception as exc:
            reason = failures[-1] if failures else str(exc) or type(exc).__name__
            raise ConnectionFailedError(
                f"cannot connect to NATS at {self.nats_url}: {reason} ({NATS_HINT})"
            ) from exc
        connected = True
        nc.options["max_reconnect_attempts"] = max_reconnect_attempts
        return watch.attach(nc) if watch is not None else nc


def inbox_prefix() -> str:
    """``NATS_INBOX_PREFIX``, where a user limited to its own inbox prefix receives replies (the
    operator sets it in worker pods of tenant accounts); ``_INBOX`` by default."""
    return os.environ.get("NATS_INBOX_PREFIX") or "_INBOX"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when it is installed, else on asyncio's loop, with natsflow's
    garbage collector thresholds (:mod:`natsflow_engine.gcpolicy`)."""
    try:
        gcpolicy.tune()
    except ValueError as exc:
        coro.close()
        fail(str(exc), 2)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def emit_json(document: Any) -> None:
    """One JSON document on stdout, nothing else (``-o json``)."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
