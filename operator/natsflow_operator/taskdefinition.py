"""Kopf handlers of ``TaskDefinition``: catalog entry, jobs consumer, worker Deployment, autoscaler.

Create, resume and spec updates run one idempotent reconcile; a drift timer repeats it (a
consumer or Deployment deleted behind the operator's back comes back). With
``autoscaling.enabled`` a daemon polls the consumer backlog (:mod:`natsflow_operator.scaler`).
The Deployment carries an owner reference to the TaskDefinition, so Kubernetes' garbage
collector removes it with the resource, whatever the ``deletionPolicy`` (which is about NATS).
"""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from natsflow_operator.conditions import Cond
from natsflow_operator.context import (
    RETRYABLE,
    MissingReference,
    OperatorContext,
    write_status,
)
from natsflow_operator.handlers import applied_ref, leave_previous_nats, register_delete, register_reconcile
from natsflow_operator.kube import KubeError, paths
from natsflow_operator.models import GROUP, VERSION, TaskDefinitionSpec, describe_errors
from natsflow_operator.podpolicy import WORKER_SA_LABEL
from natsflow_operator.reconcile import apply_taskdefinition, delete_taskdefinition
from natsflow_operator.scaler import run_autoscaler
from natsflow_operator.workercreds import ensure_worker_creds, revoke_worker_creds
from natsflow_operator.workload import (
    APPLIED_ANNOTATION,
    HASH_ANNOTATION,
    RESTARTED_AT,
    NatsEnv,
    build_deployment,
    deployment_name,
    stored_hash,
)

__all__ = ["ensure_deployment", "register"]

RESOURCE = (GROUP, VERSION, "taskdefinitions")


def _autoscaled(spec: TaskDefinitionSpec) -> bool:
    return spec.autoscaling is not None and spec.autoscaling.enabled


async def ensure_deployment(
    ctx: OperatorContext, body: kopf.Body, spec: TaskDefinitionSpec, env: NatsEnv
) -> Cond:
    """Create the worker Deployment, or patch it when the spec changed it or someone edited it."""
    namespace, name = str(body.metadata.namespace), str(body.metadata.name)
    path = paths.deployment(namespace, deployment_name(name))
    existing = await ctx.kube.get(path)
    if not spec.image and not spec.pod_template:
        if existing is not None and _owned_by(existing, body):
            await ctx.kube.delete(path)
        return Cond("WorkloadReady", True, "NoWorkload", "no image: workers run outside this namespace")
    # Autoscaled: the daemon owns the count. Unset: an HPA, KEDA or a person does.
    fixed = None if _autoscaled(spec) else spec.replicas
    initial = spec.autoscaling.min_replicas if spec.autoscaling and _autoscaled(spec) else fixed
    desired = build_deployment(namespace, name, spec, env, replicas=fixed if existing else initial)
    kopf.append_owner_reference(desired, owner=body)
    if existing is None:
        try:
            created = await ctx.kube.create(paths.deployments(namespace), desired)
        except KubeError as exc:
            if not exc.conflict:  # else: the drift timer or a previous attempt was first
                raise
            existing = await ctx.kube.get(path) or {}
        else:
            await _record_applied(ctx, path, desired, created)
            return Cond("WorkloadReady", True, "DeploymentCreated", desired["metadata"]["name"])
    if existing and not _owned_by(existing, body):
        message = f"Deployment {deployment_name(name)} exists and is not owned by this TaskDefinition"
        return Cond("WorkloadReady", False, "DeploymentConflict", message)
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    same_spec = annotations.get(HASH_ANNOTATION) == desired["metadata"]["annotations"][HASH_ANNOTATION]
    untouched = annotations.get(APPLIED_ANNOTATION) == stored_hash(existing)
    same_replicas = fixed is None or (existing.get("spec") or {}).get("replicas") == fixed
    if same_spec and untouched and same_replicas:
        return Cond("WorkloadReady", True, "DeploymentCurrent", desired["metadata"]["name"])
    template = desired["spec"]["template"]
    restarted = (
        (((existing.get("spec") or {}).get("template") or {}).get("metadata") or {})
        .get("annotations", {})
        .get(RESTARTED_AT)
    )
    if restarted:  # keep `kubectl rollout restart`'s mark, or the patch would restart again
        template["metadata"].setdefault("annotations", {})[RESTARTED_AT] = restarted
    # Replace the whole template (a merge patch would keep fields the spec no longer has).
    ops: list[dict[str, Any]] = [{"op": "add", "path": "/spec/template", "value": template}]
    if fixed is not None:
        ops.append({"op": "add", "path": "/spec/replicas", "value": fixed})
    patched = await ctx.kube.json_patch(path, ops)
    await _record_applied(ctx, path, desired, patched)
    reason = "DeploymentUpdated" if not (same_spec and untouched) else "DeploymentScaled"
    return Cond("WorkloadReady", True, reason, desired["metadata"]["name"])


async def _record_applied(
    ctx: OperatorContext, path: str, desired: dict[str, Any], stored: dict[str, Any]
) -> None:
    """Labels, the spec's hash, and the hash of the template as the API server stored it."""
    meta = desired["metadata"]
    annotations = {**meta["annotations"], APPLIED_ANNOTATION: stored_hash(stored)}
    await ctx.kube.merge_patch(path, {"metadata": {"labels": meta["labels"], "annotations": annotations}})


async def _service_account_refused(
    ctx: OperatorContext, namespace: str, spec: TaskDefinitionSpec
) -> Cond | None:
    """``Validated=False`` unless the worker ServiceAccount is labelled for natsflow workers."""
    account = spec.service_account_name
    if not account or not (spec.image or spec.pod_template):
        return None
    found = await ctx.kube.get(paths.service_account(namespace, account))
    if found is None:
        return Cond(
            "Validated",
            False,
            "ServiceAccountNotFound",
            f"ServiceAccount {namespace}/{account} does not exist",
        )
    labels = (found.get("metadata") or {}).get("labels") or {}
    if labels.get(WORKER_SA_LABEL) != "true":
        message = (
            f'ServiceAccount {account} lacks the label {WORKER_SA_LABEL}: "true" (a namespace admin sets it)'
        )
        return Cond("Validated", False, "ServiceAccountNotAllowed", message)
    return None


def _owned_by(obj: dict[str, Any], owner: kopf.Body) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner.metadata.uid for ref in refs)


async def reconcile(
    ctx: OperatorContext,
    *,
    body: kopf.Body,
    drift: bool,
    logger: kopf.Logger,
    patch: kopf.Patch,
    previous_ref: str | None = None,
) -> None:
    status, namespace, name = body.status, str(body.metadata.namespace), str(body.metadata.name)
    generation = body.metadata.get("generation")
    now = ctx.now()

    def report(*conds: Cond, **fields: Any) -> bool:
        return write_status(patch, status, conds, generation=generation, now=now, fields=fields)

    try:
        spec = TaskDefinitionSpec.model_validate(dict(body.spec), context={"name": name})
    except ValidationError as exc:
        report(Cond("Validated", False, "InvalidSpec", describe_errors(exc)))
        return
    try:
        if refused := await _service_account_refused(ctx, namespace, spec):
            report(refused)
            if refused.reason == "ServiceAccountNotFound":
                raise kopf.TemporaryError(refused.message, delay=ctx.config.retry_delay)
            return
        handle, env = await ctx.nats_for(namespace, spec.nats_ref)
        if env.tenant_account:
            env = await ensure_worker_creds(ctx, body, spec, env)
        await leave_previous_nats(ctx, body, spec, handle, remove, previous_ref)
        outcome = await apply_taskdefinition(handle, namespace, name, spec, generation=generation)
    except MissingReference as exc:
        report(Cond("Synced", False, exc.reason, str(exc)))
        raise kopf.TemporaryError(str(exc), delay=ctx.config.retry_delay) from exc
    except RETRYABLE as exc:
        reason, message = ctx.failure(exc, namespace, spec.nats_ref)
        report(Cond("Synced", False, reason, message), Cond("ConsumerReady", None, reason))
        raise kopf.TemporaryError(f"{reason}: {message}", delay=ctx.config.retry_delay) from exc
    if outcome.action == "invalid":
        report(*outcome.conditions)
        return
    try:
        workload = await ensure_deployment(ctx, body, spec, env)
    except RETRYABLE as exc:
        workload = Cond("WorkloadReady", False, "DeploymentFailed", str(exc))
    fields = {**outcome.status, "natsRef": applied_ref(spec.nats_ref)}
    conds = list(outcome.conditions)
    drop = [] if _autoscaled(spec) else ["ScalingActive"]
    if workload.reason == "NoWorkload":
        drop.append("WorkloadReady")
        fields["deployment"] = None  # removes the field
    else:
        conds.append(workload)
        fields["deployment"] = deployment_name(name)
    write_status(patch, status, conds, generation=generation, now=now, fields=fields, drop=drop)
    changed = outcome.action != "unchanged" or workload.reason in (
        "DeploymentCreated",
        "DeploymentUpdated",
        "DeploymentScaled",
    )
    if changed:
        what = f"consumer {outcome.action}, {workload.reason}"
        if drift:
            kopf.warn(body, reason="DriftCorrected", message=what)
        else:
            kopf.info(body, reason="Reconciled", message=what)
    if workload.reason == "DeploymentFailed":
        raise kopf.TemporaryError(workload.message, delay=ctx.config.retry_delay)


async def remove(handle: Any, namespace: str, name: str, spec: Any, body: kopf.Body) -> None:
    await delete_taskdefinition(handle, namespace, name, spec.task_type)


def register(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    """Attach the TaskDefinition handlers to ``registry``."""

    register_reconcile(registry, ctx, RESOURCE, "taskdefinition", reconcile)

    def autoscaling_enabled(spec: kopf.Spec, **_: Any) -> bool:
        return bool((spec.get("autoscaling") or {}).get("enabled"))

    @kopf.daemon(
        *RESOURCE,
        id="taskdefinition-autoscaler",
        when=autoscaling_enabled,
        cancellation_timeout=5.0,
        registry=registry,
    )
    async def autoscaler(body: kopf.Body, stopped: kopf.DaemonStopped, logger: kopf.Logger, **_: Any) -> None:
        await run_autoscaler(ctx, body, stopped, logger)

    async def revoke(body: kopf.Body) -> None:
        await revoke_worker_creds(ctx, body)

    register_delete(
        registry,
        ctx,
        RESOURCE,
        "taskdefinition",
        TaskDefinitionSpec,
        remove,
        "consumer and catalog entry",
        revoke=revoke,
    )
