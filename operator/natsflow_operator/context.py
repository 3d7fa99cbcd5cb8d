"""What every handler shares: settings, NATS connections, the Kubernetes client, status writing.

Handlers get one :class:`OperatorContext` (built by :func:`natsflow_operator.main.build_registry`)
instead of module globals, so tests can run several operators with their own settings.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf
import nats.errors
from natsflow_engine.errors import ClaimsUpdateError, ConflictError, ConnectionFailedError, MissingReference
from natsflow_engine.observability import Metrics

from natsflow_operator.conditions import Cond, merge_conditions
from natsflow_operator.connections import NatsHandle, NatsPermissionError, NatsPool, NatsTarget
from natsflow_operator.kube import KubeClient, KubeError, paths
from natsflow_operator.models import ConfigMapKeyRef, NatsRef, WorkflowSpec
from natsflow_operator.tenancy import Accounts, TenancyConfig
from natsflow_operator.workflow_parts import FormSource
from natsflow_operator.workload import NatsEnv

__all__ = [
    "RETRYABLE",
    "UNAVAILABLE",
    "MissingReference",
    "OperatorConfig",
    "OperatorContext",
    "TenancyConfig",
    "write_status",
]

log = logging.getLogger(__name__)


RETRYABLE: tuple[type[BaseException], ...] = (
    NatsPermissionError,
    ClaimsUpdateError,
    ConnectionFailedError,
    ConflictError,
    nats.errors.Error,
    KubeError,
    aiohttp.ClientError,
    TimeoutError,
    OSError,
)
"""Errors that mean "try again later" (NATS or the API server unavailable, a lost race; a
permission that someone may grant meanwhile). :meth:`OperatorContext.failure` names them."""
UNAVAILABLE: tuple[type[BaseException], ...] = (MissingReference, *RETRYABLE)
"""Retryable errors plus a Secret or ConfigMap that does not exist (yet)."""


@dataclass(frozen=True)
class OperatorConfig:
    """Settings of one operator process (flags of ``natsflow operator``)."""

    nats_url: str = "nats://localhost:4222"
    """Default NATS server for objects without ``spec.natsRef``."""
    nats_creds: str | None = None
    """Credentials file for the default connection."""
    worker_nats_url: str | None = None
    """URL the workers use with the default connection (default: ``nats_url``)."""
    worker_creds_secret: str | None = None
    """Secret (key ``creds``) mounted into workers that use the default connection."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to serve; empty: the whole cluster."""
    drift_interval: float = 60.0
    """Seconds between drift checks of each object (recreate what was deleted behind our back)."""
    retry_delay: float = 10.0
    """Seconds before a handler retries after NATS or the API server failed."""
    kube: kopf.ConnectionInfo | None = None
    """Fixed API credentials (tests); by default Kopf's login (service account or kubeconfig)."""
    health_port: int = 0
    """Port of ``/healthz``, ``/readyz`` and ``/metrics`` (the chart's ``health.port``); 0: off."""
    tenancy: TenancyConfig | None = None
    """Accounts per tenant (``Tenant`` resources, NATS in operator mode at ``nats_url``); ``None``:
    the default connection and ``natsRef`` only."""


class OperatorContext:
    """Shared state of the handlers of one operator run."""

    def __init__(self, config: OperatorConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.pool = NatsPool()
        self.kube = KubeClient()
        self.clock = clock
        self.metrics = Metrics()
        self._handles: dict[tuple[str, str | None], NatsHandle] = {}
        self.locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        """One reconcile pass at a time per object (``handlers.one_at_a_time``)."""
        self.generations: dict[tuple[str, str, str], int] = {}
        """The newest ``metadata.generation`` reconciled per object."""
        self.accounts = (
            Accounts(self.kube, config.tenancy, config.nats_url, clock)
            if config.tenancy is not None
            else None
        )
        """Tenant accounts (``None`` without ``config.tenancy``)."""

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def _secret(self, namespace: str, name: str) -> dict[str, str]:
        found = await self.kube.get(paths.secret(namespace, name))
        if found is None:
            raise MissingReference(
                "NatsSecretNotFound", f"Secret {namespace}/{name} (natsRef) does not exist"
            )
        data = {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}
        data.update(found.get("stringData") or {})
        if not data.get("url"):
            raise MissingReference("NatsSecretInvalid", f"Secret {namespace}/{name} has no key 'url'")
        return data

    async def nats_for(self, namespace: str, ref: NatsRef | None) -> tuple[NatsHandle, NatsEnv]:
        """The connection for an object, and how its workers reach the same account."""
        if ref is None and self.accounts is not None:
            return await self._tenant_nats(namespace, self.accounts)
        if ref is None:
            target = NatsTarget(self.config.nats_url, creds_file=self.config.nats_creds)
            env = NatsEnv(
                url=self.config.worker_nats_url or self.config.nats_url,
                creds_secret=self.config.worker_creds_secret,
            )
        else:
            data = await self._secret(namespace, ref.name)
            target = NatsTarget(data["url"].strip(), creds=data.get("creds") or None)
            env = NatsEnv(url_secret=ref.name, creds_secret=ref.name if data.get("creds") else None)
        owner = (namespace, ref.name if ref else None)
        handle = await self.pool.get(target, owner=owner if ref else "default")
        self._handles[owner] = handle
        return handle, env

    async def _tenant_nats(self, namespace: str, accounts: Accounts) -> tuple[NatsHandle, NatsEnv]:
        """The connection into the tenant's own account, as the operator's user of it."""
        tenant = await self.kube.get(paths.tenant(namespace))
        if tenant is None or (tenant.get("metadata") or {}).get("deletionTimestamp"):
            raise MissingReference(
                "TenantNotFound", f"no Tenant {namespace} (the namespace has no NATS account)"
            )
        account = await accounts.load(namespace)
        if account is None or (tenant.get("status") or {}).get("account") != account.public:
            raise MissingReference("TenantNotReady", f"Tenant {namespace} has no NATS account yet")
        target = NatsTarget(self.config.nats_url, creds=accounts.operator_user(account))
        owner = (namespace, None)
        handle = await self.pool.get(target, owner=("tenant", namespace))
        self._handles[owner] = handle
        return handle, NatsEnv(url=self.config.worker_nats_url or self.config.nats_url, tenant_account=True)

    async def leave_tenant(self, namespace: str) -> None:
        """Close the connection into a tenant's account (the Tenant is going)."""
        self._handles.pop((namespace, None), None)
        await self.pool.release_owner(("tenant", namespace))

    def failure(self, exc: BaseException, namespace: str, ref: NatsRef | None) -> tuple[str, str]:
        """(reason, message) of a retryable error: a permission is not an outage."""
        if isinstance(exc, KubeError) and exc.status == 403:
            return "Forbidden", f"the operator's ServiceAccount lacks a permission: {exc}"
        if isinstance(exc, NatsPermissionError):
            return "NatsPermissionDenied", str(exc)
        handle = self._handles.get((namespace, ref.name if ref else None))
        denied = handle.denied() if handle is not None and not isinstance(exc, KubeError) else None
        if denied:
            return "NatsPermissionDenied", f"{denied} (then: {type(exc).__name__}: {exc})"
        return "NatsUnavailable", str(exc)

    async def bpmn_source(self, namespace: str, spec: WorkflowSpec) -> str:
        if spec.bpmn is not None:
            return spec.bpmn
        assert spec.bpmn_from is not None
        return await self.config_map_value(namespace, spec.bpmn_from.config_map_key_ref)

    async def form_sources(self, namespace: str, spec: WorkflowSpec) -> list[FormSource]:
        """The Workflow's forms, inline ones first; a missing ConfigMap or key raises
        :class:`MissingReference`."""
        found = [FormSource(f"forms[{i}]", text) for i, text in enumerate(spec.forms)]
        for source in spec.forms_from:
            ref = source.config_map_key_ref
            text = await self.config_map_value(namespace, ref)
            found.append(FormSource(f"ConfigMap {namespace}/{ref.name} key {ref.key}", text))
        return found

    async def config_map_value(self, namespace: str, ref: ConfigMapKeyRef) -> str:
        found = await self.kube.get(paths.configmap(namespace, ref.name))
        if found is None:
            raise MissingReference("ConfigMapNotFound", f"ConfigMap {namespace}/{ref.name} does not exist")
        data = found.get("data") or {}
        if ref.key in data:
            return str(data[ref.key])
        binary = found.get("binaryData") or {}
        if ref.key in binary:
            return base64.b64decode(binary[ref.key]).decode("utf-8-sig")
        raise MissingReference(
            "ConfigMapKeyNotFound", f"ConfigMap {namespace}/{ref.name} has no key {ref.key!r}"
        )

    async def close(self) -> None:
        await asyncio.gather(self.pool.close(), self.kube.close())
        if self.accounts is not None:
            await self.accounts.close()


def write_status(
    patch: kopf.Patch,
    status: Mapping[str, Any],
    conditions: Iterable[Cond],
    *,
    generation: int | None,
    now: datetime,
    fields: Mapping[str, Any] | None = None,
    drop: Iterable[str] = (),
) -> bool:
    """Put into ``patch.status`` what differs from ``status``; return whether anything did."""
    merged = merge_conditions(status.get("conditions"), conditions, generation=generation, now=now, drop=drop)
    changes: dict[str, Any] = {}
    if merged != list(status.get("conditions") or []):
        changes["conditions"] = merged
    if generation is not None and status.get("observedGeneration") != generation:
        changes["observedGeneration"] = generation
    for key, value in (fields or {}).items():
        if status.get(key) != value:
            changes[key] = value
    for key, value in changes.items():
        patch.status[key] = value
    return bool(changes)
