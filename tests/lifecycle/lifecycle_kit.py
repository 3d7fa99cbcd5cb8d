"""Helpers of the lifecycle tests (not a test module): an operator-mode nats-server whose
account limits the test changes at run time, components run as real processes, and plain
HTTP probes of their health endpoints.

Setting an account's connection limit to 0 makes nats-server close every connection of that
account with ``-ERR 'maximum account active connections exceeded'``; nats-py does not reconnect
after an ``-ERR``, so this is a server-side close "for good", the case a component must not
survive as a zombie.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.client import Client
from natsflow_engine.accounts import AccountLimits, OperatorTrust, TenantAccount
from natsflow_engine.server import EmbeddedNatsServer

sys.path.append(str(Path(__file__).resolve().parents[1] / "tenancy"))
from tenancy_kit import OperatorServer

DEADLINE = 60.0
"""A correctness deadline: what is awaited normally happens within a few seconds."""


@dataclass
class Platform:
    """An operator-mode nats-server and one tenant account on it (JetStream enabled)."""

    operator: OperatorServer
    account: TenantAccount
    creds_file: Path

    @property
    def url(self) -> str:
        return self.operator.url

    def system(self) -> AbstractAsyncContextManager[Client]:
        """A connection of the system account (kicks, connection listings)."""
        return self.operator.system()

    async def set_limits(self, limits: AccountLimits) -> None:
        self.account.limits = limits
        await self.operator.push(self.account)

    async def close_connections(self) -> None:
        """Close every connection of the account from the server side, for good."""
        await self.set_limits(AccountLimits(connections=0))

    async def allow_connections(self) -> None:
        await self.set_limits(AccountLimits())

    async def connect(self) -> Client:
        return await nats.connect(self.url, user_credentials=str(self.creds_file))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def http_status(port: int, path: str) -> int | None:
    """The status code of ``GET path`` on 127.0.0.1:``port``, None when nothing answers."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5.0)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 else None


async def until(check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` (a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(0.05)


@dataclass
class Component:
    """``natsflow ARGS`` as a child process; stderr goes to a file the test reads."""

    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Component:
        env = {**os.environ, "NATSFLOW_LOG_FORMAT": "text", **self.env}
        with self.log.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from natsflow.cli import main; main()",
                *self.args,
                stdout=err,
                stderr=err,
                env=env,
            )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def returncode(self) -> int | None:
        assert self.proc is not None
        return self.proc.returncode

    async def exited(self, timeout: float = DEADLINE) -> int:
        """Its exit code; fails (with its output) when it still runs after ``timeout``."""
        assert self.proc is not None
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError:
            raise AssertionError(
                f"natsflow {self.args[0]} still runs {timeout:g}s after its connection was closed "
                f"for good (a zombie); its output:\n{self.output()[-3000:]}"
            ) from None

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL: never leave the child behind."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            async with asyncio.timeout(20):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def platform(tmp: Path) -> tuple[EmbeddedNatsServer, Platform]:
    """Start an operator-mode server with one tenant account; the caller closes the server."""
    from natsflow_engine.server import operator_config

    trust = OperatorTrust.create()
    resolver = tmp / "resolver"
    resolver.mkdir()
    config = operator_config(
        trust.jwt,
        trust.system_account.public,
        {trust.system_account.public: trust.system_account_jwt},
        resolver_dir=resolver,
    )
    server = EmbeddedNatsServer(config=config, store_dir=tmp / "js").start()
    account = TenantAccount("acme", AccountLimits())
    creds = tmp / "platform.creds"
    creds.write_text(account.user("platform").creds)
    made = Platform(OperatorServer(trust, server), account, creds)
    await made.allow_connections()
    return server, made
