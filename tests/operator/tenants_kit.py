"""Helpers of the Tenant tests: an operator-mode nats-server, the platform Secrets the operator
reads, Tenant objects on kmock, and connections that record the server's refusals."""

from __future__ import annotations

import asyncio
import base64
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import kopf
import nats
import pytest
from nats.aio.client import Client, RawCredentials
from natsflow_engine.accounts import OperatorTrust
from natsflow_engine.server import EmbeddedNatsServer, operator_config
from natsflow_operator.context import OperatorConfig
from natsflow_operator.kube import KubeClient, paths
from natsflow_operator.models import API_VERSION
from natsflow_operator.tenancy import TenancyConfig

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
        "metadata": {"name": name, "uid": str(uuid.uuid4()), "generation": 1, "resourceVersion": "1"},
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


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tenancy_config(
    k8s: kmock.KubernetesEmulator, operator_mode: OperatorMode, tenancy: TenancyConfig
) -> OperatorConfig:
    """The operator's settings against kmock and the operator-mode server."""
    return OperatorConfig(
        nats_url=operator_mode.url,
        kube=kopf.ConnectionInfo(server=str(k8s.url)),
        drift_interval=0.3,
        retry_delay=0.3,
        health_port=free_port(),
        tenancy=tenancy,
    )


def operator_server(tmp_path_factory: pytest.TempPathFactory, extra: str = "") -> Iterator[OperatorMode]:
    """A nats-server in operator mode with a full resolver; ``extra`` configuration appended."""
    trust = OperatorTrust.create()
    resolver = Path(tmp_path_factory.mktemp("resolver"))
    config = operator_config(
        trust.jwt,
        trust.system_account.public,
        {trust.system_account.public: trust.system_account_jwt},
        resolver_dir=resolver,
    )
    with EmbeddedNatsServer(config=config + extra) as server:
        yield OperatorMode(trust, server)


@pytest.fixture(scope="module")
def operator_mode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorMode]:
    yield from operator_server(tmp_path_factory)


async def ready(running: Any, name: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        obj = await tenant(running.api.client, name)
        return obj if running.condition(obj, "Ready").get("status") == "True" else None

    return await running.eventually(probe, timeout=DEADLINE)


async def start(running: Any, operator_mode: OperatorMode, *names: str, **spec: Any) -> list[str]:
    """Seed the platform Secrets, create the Tenants, wait until Ready; their account keys."""
    await seed_platform(running.api.client, operator_mode.trust)
    for name in names:
        await create_tenant(running.api.client, name, spec)
    return [str((await ready(running, name))["status"]["account"]) for name in names]


async def td_ready(running: Any, namespace: str, name: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        obj = await running.api.get("TaskDefinition", namespace, name)
        return obj if running.condition(obj, "Ready").get("status") == "True" else None

    return await running.eventually(probe, timeout=DEADLINE)


async def worker_creds(running: Any, namespace: str, name: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        return await running.api.client.get(paths.secret(namespace, f"{name}-worker-nats"))

    return await running.eventually(probe, timeout=DEADLINE)


async def site_secret(running: Any, namespace: str, site: str) -> dict[str, Any]:
    """The Secret of a remote site's user, once the operator wrote it."""

    async def probe() -> dict[str, Any] | None:
        return await running.api.client.get(paths.secret(namespace, f"natsflow-site-{site}"))

    return await running.eventually(probe, timeout=DEADLINE)
