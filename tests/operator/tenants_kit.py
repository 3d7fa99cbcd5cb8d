"""Helpers of the Tenant tests: an operator-mode nats-server, the platform Secrets the operator
reads, Tenant objects on kmock, and connections that record the server's refusals."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client, RawCredentials
from natsflow_engine.accounts import OperatorTrust
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_operator.kube import KubeClient, paths
from natsflow_operator.models import API_VERSION

PLATFORM = "natsflow-system"
DEADLINE = 30.0
"""Generous correctness deadline for the operator and the server to act on a change."""


@dataclass
class OperatorMode:
    trust: OperatorTrust
    server: EmbeddedNatsServer

    @property
    def url(self) -> str:
        return self.server.url


def secret_value(secret: dict[str, Any] | None, key: str) -> str | None:
    data = (secret or {}).get("data") or {}
    return base64.b64decode(data[key]).decode() if key in data else None


async def seed_platform(client: KubeClient, trust: OperatorTrust) -> None:
    """The two Secrets the platform team creates: the operator signing key, the system user."""
    for name, data in (
        ("natsflow-operator-signing-key", {"seed": trust.signing_key.seed}),
        ("natsflow-system-credentials", {"creds": trust.system_user.creds}),
    ):
        body = {"metadata": {"name": name, "namespace": PLATFORM}, "stringData": data}
        await client.create(paths.secrets(PLATFORM), body)


async def create_tenant(client: KubeClient, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": API_VERSION,
        "kind": "Tenant",
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1, "resourceVersion": "1"},
        "spec": spec,
    }
    await client.create("/apis/natsflow.io/v1alpha1/tenants", body)


async def tenant(client: KubeClient, name: str) -> dict[str, Any] | None:
    return await client.get(paths.tenant(name))


async def platform_creds(client: KubeClient, name: str) -> str | None:
    found = await client.get(paths.secret(PLATFORM, "natsflow-tenant-credentials"))
    return secret_value(found, f"{name}.creds")


@dataclass
class Conn:
    """A connection without reconnects that keeps the server's errors and its close."""

    nc: Client
    errors: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def denied(self, subject: str) -> bool:
        """Whether the server refused ``subject`` (its error arrives within the deadline)."""
        quoted = f'"{subject.lower()}"'
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while not any("permissions violation" in e.lower() and quoted in e.lower() for e in self.errors):
            if self.nc.is_closed or loop.time() > deadline:
                return False
            await self.nc.flush(timeout=5)
            await asyncio.sleep(0.01)
        return True


async def connect(url: str, creds: str, **options: Any) -> Conn:
    errors: list[str] = []
    closed = asyncio.Event()

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    async def on_closed() -> None:
        closed.set()

    nc = Client()
    try:
        await nc.connect(
            url,
            user_credentials=RawCredentials(creds),
            error_cb=on_error,
            closed_cb=on_closed,
            allow_reconnect=False,
            connect_timeout=5,
            **options,
        )
    except BaseException:
        await nc.close()
        raise
    return Conn(nc, errors, closed)


@asynccontextmanager
async def connected(url: str, creds: str, **options: Any) -> AsyncIterator[Conn]:
    conn = await connect(url, creds, **options)
    try:
        yield conn
    finally:
        await conn.nc.close()


async def refused(url: str, creds: str) -> str | None:
    """The refusal's text when the server refuses these credentials, else ``None``."""
    try:
        conn = await connect(url, creds, max_reconnect_attempts=0)
    except (nats.errors.Error, OSError) as exc:
        return str(exc) or type(exc).__name__
    await conn.nc.close()
    return None
