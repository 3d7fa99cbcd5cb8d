"""Fixtures of the operator tests: kmock as the Kubernetes API, the session's real nats-server.

kmock has no generations, uids or schema validation: :class:`Api` sets ``uid`` and
``generation`` on create and bumps ``generation`` on every spec change, as the API server would.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import kmock
import kopf
import pytest
from natsflow_operator.context import OperatorConfig
from natsflow_operator.kinds import KINDS
from natsflow_operator.kube import KubeClient, paths
from natsflow_operator.main import operator
from natsflow_operator.models import GROUP, VERSION
from natsflow_operator.rbac import RULES

T = TypeVar("T")
TEST_AGENT = "natsflow-test"
VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}
PLURALS = {info.kind: info.plural for info in KINDS.values()}


@pytest.fixture
def k8s(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    """kmock with the resources the operator uses declared (Kopf needs discovery)."""
    info = kmock.ResourceInfo
    kmock.resources["v1/namespaces"] = info(kind="Namespace", namespaced=False, verbs=VERBS)
    kmock.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = info(
        kind="CustomResourceDefinition", namespaced=False, verbs=VERBS
    )
    for kind in KINDS.values():
        kmock.resources[f"{GROUP}/{VERSION}/{kind.plural}"] = info(
            kind=kind.kind,
            singular=kind.singular,
            namespaced=kind.namespaced,
            verbs=VERBS,
            subresources={"status"},
        )
    kmock.resources["apps/v1/deployments"] = info(
        kind="Deployment", namespaced=True, verbs=VERBS, subresources={"status", "scale"}
    )
    core = (
        ("secrets", "Secret"),
        ("configmaps", "ConfigMap"),
        ("events", "Event"),
        ("serviceaccounts", "ServiceAccount"),
    )
    for plural, kind in core:
        kmock.resources[f"v1/{plural}"] = info(kind=kind, namespaced=True, verbs=VERBS)
    return kmock


class Api:
    """The test's side of the Kubernetes API: create, update and read objects like kubectl."""

    def __init__(self, url: str) -> None:
        self.client = KubeClient(user_agent=TEST_AGENT)
        self.client.set_credentials(kopf.ConnectionInfo(server=url))

    @staticmethod
    def path(kind: str, namespace: str, name: str | None = None) -> str:
        base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURALS[kind]}"
        return f"{base}/{name}" if name else base

    async def create(self, kind: str, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "resourceVersion": "1",
            },
            "spec": spec,
        }
        return await self.client.create(self.path(kind, namespace), body)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.client.get(self.path(kind, namespace, name))

    async def patch_spec(self, kind: str, namespace: str, name: str, spec: dict[str, Any]) -> None:
        """Merge ``spec`` into the object's spec; bump ``generation`` and ``resourceVersion``."""
        current = await self.get(kind, namespace, name)
        assert current is not None
        meta = current["metadata"]
        bumped = {
            "generation": int(meta.get("generation", 1)) + 1,
            "resourceVersion": str(int(meta.get("resourceVersion", 1)) + 1),
        }
        await self.client.merge_patch(self.path(kind, namespace, name), {"metadata": bumped, "spec": spec})

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        await self.client.delete(self.path(kind, namespace, name))

    async def create_core(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        body = {"metadata": {"name": name, "namespace": namespace}, **body}
        await self.client.create(f"/api/v1/namespaces/{namespace}/{plural}", body)

    async def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.client.get(paths.deployment(namespace, name))


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    """The condition of that type ({} when absent)."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 30.0, step: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


@dataclass
class Running:
    """What a test gets: the API, the operator's settings and the polling helpers."""

    api: Api
    config: OperatorConfig
    condition = staticmethod(condition)
    eventually = staticmethod(eventually)


@pytest.fixture
def operator_config(k8s: kmock.KubernetesEmulator, nats_url: str) -> OperatorConfig:
    with socket.socket() as probe:  # a free port for /healthz, /readyz and /metrics
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return OperatorConfig(
        nats_url=nats_url,
        kube=kopf.ConnectionInfo(server=str(k8s.url)),
        drift_interval=0.3,
        retry_delay=0.3,
        health_port=port,
    )


@pytest.fixture
async def running(operator_config: OperatorConfig, k8s: kmock.KubernetesEmulator) -> AsyncIterator[Running]:
    """The operator in a thread of its own (Kopf cancels foreign tasks of its loop at exit),
    against kmock and the session's real nats-server."""
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(operator(operator_config, stop_flag=stop, ready_flag=ready))
        except asyncio.CancelledError:
            pass  # Kopf ends its root task by cancellation when the stop flag is set
        except BaseException as exc:  # reported to the test below, with where it came from
            errors.append(exc)
            traceback.print_exc()

    thread = threading.Thread(target=main, name="operator", daemon=True)
    thread.start()
    assert await asyncio.to_thread(ready.wait, 10), "the operator did not start within 10 s"
    api = Api(str(k8s.url))
    try:
        yield Running(api=api, config=operator_config)
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 20)
        await api.client.close()
        assert not thread.is_alive(), "the operator did not stop within 20 s"
        assert not errors, errors
        assert_rbac_covers(k8s)


def _verb(request: kmock.Request) -> str:
    method = str(request.method.value).upper()
    if method == "GET":
        return "watch" if request.params.get("watch") == "true" else "get" if request.name else "list"
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]


def _owner_grants_missing(request: kmock.Request) -> set[tuple[str, str, str]]:
    """An owner reference with ``blockOwnerDeletion`` needs ``update`` on the owner's
    ``<plural>/finalizers`` (the API server's OwnerReferencesPermissionEnforcement)."""
    data = request.data if isinstance(request.data, dict) else {}
    refs = (data.get("metadata") or {}).get("ownerReferences") or []
    needed = set()
    for ref in refs:
        if ref.get("blockOwnerDeletion"):
            group = str(ref.get("apiVersion", "")).rpartition("/")[0]
            needed.add((group, f"{PLURALS[ref['kind']]}/finalizers", "update"))
    return {
        grant
        for grant in needed
        if not any(
            grant[0] in rule["apiGroups"] and grant[1] in rule["resources"] and grant[2] in rule["verbs"]
            for rule in RULES
        )
    }


def assert_rbac_covers(k8s: kmock.KubernetesEmulator) -> None:
    """Every API call the operator (Kopf or our client) made is allowed by ``rbac.RULES``."""
    missing, used = set(), set()
    for request in k8s:
        if (
            request.resource is None
            or not request.resource.plural
            or request.headers.get("User-Agent") == TEST_AGENT
        ):
            continue  # discovery, or the test's own calls
        plural = request.resource.plural + (f"/{request.subresource}" if request.subresource else "")
        verb, group = _verb(request), request.resource.group
        used.add((group, plural, verb))
        allowed = any(
            group in rule["apiGroups"] and plural in rule["resources"] and verb in rule["verbs"]
            for rule in RULES
        )
        if not allowed:
            missing.add((group, plural, verb))
        missing.update(_owner_grants_missing(request))
    if os.environ.get("NATSFLOW_RBAC_DUMP"):  # list what the operator really calls
        with open(os.environ["NATSFLOW_RBAC_DUMP"], "a", encoding="utf-8") as out:
            out.writelines(f"{call}\n" for call in sorted(used))
    assert not missing, f"operator/rbac.py RULES lack: {sorted(missing)}"
