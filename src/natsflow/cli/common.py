"""Shared pieces of the command line: connection settings, running coroutines, output."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click
import nats
from nats.aio.client import Client
from natsflow_engine import layout

from natsflow.errors import ConnectionFailedError

__all__ = ["CliContext", "emit_json", "fail", "run"]

T = TypeVar("T")


@dataclass
class CliContext:
    nats_url: str
    creds: str | None
    tenant: str
    debug: bool

    async def connect(self, **kwargs: Any) -> Client:
        layout.validate_tenant(self.tenant)
        try:
            return await nats.connect(
                servers=self.nats_url.split(","),
                user_credentials=self.creds,
                connect_timeout=5,
                max_reconnect_attempts=kwargs.pop("max_reconnect_attempts", 3),
                allow_reconnect=True,
                **kwargs,
            )
        except Exception as exc:
            raise ConnectionFailedError(
                f"cannot connect to NATS at {self.nats_url}: {exc or type(exc).__name__}"
            ) from exc


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when it is installed, else on asyncio's loop."""
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
