"""The NATS user of a TaskDefinition's workers, in a tenant's own account.

Minted with :func:`natsflow_engine.accounts.permissions.worker_permissions` (its own command
subject, its own job consumer, replies only under its own inbox prefix; never ``_INBOX.>``),
written as the Secret ``<name>-worker-nats`` (key ``creds``) in the tenant namespace, owned by
the TaskDefinition and mounted into its worker pods (``NATS_CREDS``, ``NATS_INBOX_PREFIX``).
Re-issued before it expires (same user key); revoked, and the Secret deleted, by the
TaskDefinition's finalizer.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from typing import Any

import kopf
from natsflow_engine.accounts import InvalidKeyError
from natsflow_engine.accounts.permissions import worker_inbox_prefix, worker_permissions
from natsflow_engine.errors import MissingReference

from natsflow_operator.context import OperatorContext
from natsflow_operator.kube import paths
from natsflow_operator.models import TaskDefinitionSpec
from natsflow_operator.tenancy import creds_claims, secret_data
from natsflow_operator.workload import NatsEnv

__all__ = [
    "USER_ANNOTATION",
    "creds_secret_name",
    "ensure_worker_creds",
    "owned_by",
    "revoke_worker_creds",
    "write_owned_secret",
]

log = logging.getLogger(__name__)

USER_ANNOTATION = "natsflow.io/nats-user"


def creds_secret_name(name: str) -> str:
    return f"{name}-worker-nats"


def owned_by(obj: dict[str, Any], owner: kopf.Body) -> bool:
    """Whether ``owner`` is among the owner references of ``obj``."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner.metadata.uid for ref in refs)


async def write_owned_secret(
    ctx: OperatorContext,
    owner: kopf.Body,
    namespace: str,
    name: str,
    data: dict[str, str],
    *,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    exists: bool,
) -> None:
    """Create the Secret ``name`` owned by ``owner`` with ``data`` (plain text), or patch the
    data (and annotations) of the one that ``exists``."""
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    if exists:
        meta = {"annotations": annotations} if annotations else {}
        await ctx.kube.merge_patch(paths.secret(namespace, name), {"metadata": meta, "data": encoded})
        return
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "natsflow-operator", **labels},
            **({"annotations": annotations} if annotations else {}),
        },
        "type": "Opaque",
        "data": encoded,
    }
    kopf.append_owner_reference(manifest, owner=owner)
    await ctx.kube.create(paths.secrets(namespace), manifest)


async def ensure_worker_creds(
    ctx: OperatorContext, body: kopf.Body, spec: TaskDefinitionSpec, env: NatsEnv
) -> NatsEnv:
    """Create or re-issue the workers' credentials Secret; ``env`` with it mounted."""
    accounts = ctx.accounts
    namespace, name = str(body.metadata.namespace), str(body.metadata.name)
    account = await accounts.load(namespace) if accounts is not None else None
    if accounts is None or account is None:
        raise MissingReference("TenantNotReady", f"Tenant {namespace} has no NATS account yet")
    secret = creds_secret_name(name)
    path = paths.secret(namespace, secret)
    existing = await ctx.kube.get(path)
    if existing is not None and not owned_by(existing, body):
        raise MissingReference(
            "CredentialsSecretConflict",
            f"Secret {namespace}/{secret} exists and is not owned by this TaskDefinition",
        )
    permissions = worker_permissions(namespace, spec.task_type)
    user_name = f"worker {namespace}/{spec.task_type}"[:128]
    fresh = accounts.renew(secret_data(existing).get("creds"), account, user_name, permissions)
    if fresh is not None:
        await write_owned_secret(
            ctx,
            body,
            namespace,
            secret,
            {"creds": fresh.creds},
            labels={"natsflow.io/taskdefinition": name},
            annotations={USER_ANNOTATION: fresh.public},
            exists=existing is not None,
        )
        log.info("TaskDefinition %s/%s: worker credentials issued for user %s", namespace, name, fresh.public)
    return dataclasses.replace(
        env, creds_secret=secret, inbox_prefix=worker_inbox_prefix(namespace, spec.task_type)
    )


async def revoke_worker_creds(ctx: OperatorContext, body: kopf.Body) -> None:
    """Revoke the workers' user in the tenant's account and delete its Secret (kmock and a
    finalizer-first deletion would otherwise leave it to the garbage collector)."""
    if ctx.accounts is None:
        return
    namespace, name = str(body.metadata.namespace), str(body.metadata.name)
    path = paths.secret(namespace, creds_secret_name(name))
    existing = await ctx.kube.get(path)
    if existing is None or not owned_by(existing, body):
        return
    try:
        user = str(creds_claims(secret_data(existing).get("creds", "")).get("sub"))
    except (InvalidKeyError, ValueError):
        user = None
    owner = await ctx.kube.get(paths.tenant(namespace))
    if owner is not None and (owner.get("metadata") or {}).get("deletionTimestamp"):
        owner = None
    if user is not None and owner is not None:  # else the Tenant's deletion revokes every user
        await ctx.accounts.revoke(namespace, user)
        log.info("TaskDefinition %s/%s: worker user %s revoked", namespace, name, user)
    await ctx.kube.delete(path)
