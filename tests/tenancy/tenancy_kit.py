"""Helpers of the tenancy suite: an operator-mode nats-server, tenant accounts, probing
connections that record the server's permission errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client, RawCredentials
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError
from natsflow_engine import layout
from natsflow_engine.accounts import (
    AccountLimits,
    OperatorTrust,
    TenantAccount,
    UserCredentials,
    push_account,
)
from natsflow_engine.api.client import ApiClient
from natsflow_engine.errors import ConnectionFailedError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import deploy_definitions
from natsflow_engine.runtime.engine import Engine
from natsflow_engine.runtime.setup import ensure_job_consumer, ensure_layout
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.store import publish_command

SERVICE_MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="charge" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="pay" />
    <bpmn:serviceTask id="pay"><bpmn:extensionElements>
      <zeebe:taskDefinition type="pay" retries="1" /></bpmn:extensionElements></bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="pay" targetRef="approve" />
    <bpmn:userTask id="approve" />
    <bpmn:sequenceFlow id="f3" sourceRef="approve" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


@dataclass
class OperatorServer:
    """A nats-server in operator mode (full resolver) with its trust chain."""

    trust: OperatorTrust
    server: EmbeddedNatsServer

    @property
    def url(self) -> str:
        return self.server.url

    @asynccontextmanager
    async def system(self) -> AsyncIterator[Client]:
        nc = await nats.connect(self.url, user_credentials=RawCredentials(self.trust.system_user.creds))
        try:
            yield nc
        finally:
            await nc.close()

    async def push(self, account: TenantAccount) -> None:
        async with self.system() as nc:
            await push_account(nc, account.jwt(self.trust.signing_key))

    async def tenant(self, name: str, limits: AccountLimits | None = None) -> TenantAccount:
        account = TenantAccount(name, limits or AccountLimits())
        await self.push(account)
        return account


@dataclass
class Probe:
    """A connection that keeps every asynchronous error the server sent it."""

    nc: Client
    errors: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def denied(self, subject: str, timeout: float = 10.0) -> bool:
        """Whether the server refused an operation on ``subject``: its error arrives within
        ``timeout`` (a correctness deadline; it normally comes before the next round trip)."""
        quoted = f'"{subject.lower()}"'  # nats-py lower-cases the server's error text
        deadline = asyncio.get_running_loop().time() + timeout
        while not any("permissions violation" in e.lower() and quoted in e.lower() for e in self.errors):
            if self.nc.is_closed or asyncio.get_running_loop().time() > deadline:
                return False
            await self.nc.flush(timeout=5)
            await asyncio.sleep(0.01)
        return True

    async def close(self) -> None:
        await self.nc.close()


async def probe(url: str, user: UserCredentials, **options: Any) -> Probe:
    """Connect as ``user`` (no reconnects), recording errors and the close."""
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
            user_credentials=RawCredentials(user.creds),
            error_cb=on_error,
            closed_cb=on_closed,
            allow_reconnect=False,
            **options,
        )
    except BaseException:
        await nc.close()  # a failed client must not leave its transport to the garbage collector
        raise
    return Probe(nc, errors, closed)


async def refused(url: str, user: UserCredentials) -> str:
    """Connect as ``user`` expecting the server to refuse; the refusal's text."""
    try:
        conn = await probe(url, user, max_reconnect_attempts=0, connect_timeout=5)
    except (nats.errors.Error, OSError) as exc:
        return str(exc)
    await conn.close()
    raise AssertionError(f"the server accepted user {user.public}")


@dataclass
class TenantView:
    """One tenant's instances, read and commanded over a platform connection."""

    tenant: str
    nc: Client

    async def send(self, command: r.AnyCommand) -> None:
        await publish_command(self.nc.jetstream(), command)

    async def state(self, iid: str) -> r.InstanceState | None:
        kv = await self.nc.jetstream().key_value(layout.BUCKET_INSTANCES)
        try:
            entry = await kv.get(layout.instance_key(self.tenant, iid))
        except KeyNotFoundError:
            return None
        return r.decode_state(entry.value or b"")

    async def wait_for(
        self, iid: str, check: Callable[[r.InstanceState], bool], timeout: float = 30.0
    ) -> r.InstanceState:
        """Poll the instance record until ``check`` holds (a correctness deadline)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            state = await self.state(iid)
            if state is not None and check(state):
                return state
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"instance {iid} of {self.tenant} did not get there: {state}")
            await asyncio.sleep(0.01)

    @staticmethod
    def waits_at(element: str) -> Callable[[r.InstanceState], bool]:
        return lambda s: s.state == "active" and any(ei.el == element for ei in s.eis.values())

    async def complete_user_task(self, state: r.InstanceState) -> None:
        (task,) = [ei.user_task for ei in state.eis.values() if ei.user_task is not None]
        await self.send(
            r.UserTaskCompleted(id=f"utc.{task}", tenant=self.tenant, instance=state.id, task=task)
        )


@dataclass
class TenantStack(TenantView):
    """One tenant account running natsflow: the platform user's connection (no permission
    limits inside its account), the layout, an engine serving that tenant and the model
    deployed."""

    account: TenantAccount
    engine: Engine
    process_version: int

    @classmethod
    async def start(
        cls, server: OperatorServer, tenant: str, limits: AccountLimits | None = None
    ) -> TenantStack:
        account = await server.tenant(tenant, limits)
        nc = await nats.connect(server.url, user_credentials=RawCredentials(account.user("platform").creds))
        js = nc.jetstream()
        await ensure_layout(js)
        engine = await Engine(nc, tenant=tenant).start()
        kv = await js.key_value(layout.BUCKET_WORKFLOWS)
        deployed = await deploy_definitions(kv, tenant, SERVICE_MODEL)
        await ensure_job_consumer(js, tenant, "pay")
        return cls(tenant, nc, account, engine, deployed[0].version)

    async def stop(self) -> None:
        await self.engine.stop(timeout=2.0)
        await self.nc.close()

    async def launch(self, variables: dict[str, Any]) -> str:
        iid = r.new_id()
        await self.send(
            r.Launch(
                id=f"launch.{iid}",
                tenant=self.tenant,
                instance=iid,
                process_id="charge",
                version=self.process_version,
                variables=variables,
            )
        )
        return iid


async def dead_letters(nc: Client, tenant: str, count: int, timeout: float = 30.0) -> list[Msg]:
    """The first ``count`` commands the engine refused on ``tenant``'s subjects (``NF_DLQ``,
    ``nf.dlq.<tenant>.cmd.>``), waiting for them up to ``timeout`` (a correctness deadline)."""
    js = nc.jetstream()
    sub = await js.subscribe(
        layout.command_dead_letter_subject(tenant, ">"), stream=layout.STREAM_DEAD_LETTERS, ordered_consumer=True
    )
    try:
        return [await sub.next_msg(timeout=timeout) for _ in range(count)]
    finally:
        await sub.unsubscribe()


async def api_answers(api: ApiClient, timeout: float = 30.0) -> None:
    """Wait until the tenant's API server answers (a correctness deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await api.workflows()
            return
        except ConnectionFailedError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


def free_port() -> int:
    """A free TCP port on loopback (for a server listening on a second port, like leaf nodes)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
