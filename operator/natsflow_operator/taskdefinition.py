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
from natsflow_operator.handlers import register_delete, register_reconcile
from natsflow_operator.kube import KubeError, paths
from natsflow_operator.models import GROUP, VERSION, TaskDefinitionSpec, describe_errors
from natsflow_operator.reconcile import apply_taskdefinition, delete_taskdefinition
from natsflow_operator.scaler import run_autoscaler
from natsflow_operator.workload import HASH_ANNOTATION, NatsEnv, build_deployment, deployment_name

__all__ = ["ensure_deployment", "register"]

RESOURCE = (GROUP, VERSION, "taskdefinitions")


def _autoscaled(spec: TaskDefinitionSpec) -> bool:
    return spec.autoscaling is not None and spec.autoscaling.enabled


async def ensure_deployment(
    ctx: OperatorContext, body: kopf.Body, spec: TaskDefinitionSpec, env: NatsEnv
) -> Cond:
    """Create the worker Deployment, or patch it when its template (or fixed replicas) differ."""
    namespace, name = str(body.metadata.namespace), str(body.metadata.name)
    path = paths.deployment(namespace, deployment_name(name))
    existing = await ctx.kube.get(path)
    if not spec.image and not spec.pod_template:
        if existing is not None and _owned_by(existing, body):
            await ctx.kube.delete(path)
        return Cond("WorkloadReady", True, "NoWorkload", "no image: workers run outside this namespace")
    fixed = None if _autoscaled(spec) else spec.replicas
    initial = spec.autoscaling.min_replicas if spec.autoscaling and fixed is None else fixed
    desired = build_deployment(namespace, name, spec, env, replicas=fixed if existing else initial)
    kopf.append_owner_reference(desired, owner=body)
    if existing is None:
        try:
            await ctx.kube.create(paths.deployments(namespace), desired)
            return Cond("WorkloadReady", True, "DeploymentCreated", desired["metadata"]["name"])
        except KubeError as exc:
            if not exc.conflict:  # else: the drift timer or a previous attempt was first
                raise
            existing = await ctx.kube.get(path) or {}
    if existing and not _owned_by(existing, body):
        message = f"Deployment {deployment_name(name)} exists and is not owned by this TaskDefinition"
        return Cond("WorkloadReady", False, "DeploymentConflict", message)
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    same_template = annotations.get(HASH_ANNOTATION) == desired["metadata"]["annotations"][HASH_ANNOTATION]
    same_replicas = fixed is None or (existing.get("spec") or {}).get("replicas") == fixed
    if same_template and same_replicas:
        return Cond("WorkloadReady", True, "DeploymentCurrent", desired["metadata"]["name"])
    # Replace the whole template (a merge patch would keep fields the spec no longer has).
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/spec/template", "value": desired["spec"]["template"]}
    ]
    if fixed is not None:
        ops.append({"op": "add", "path": "/spec/replicas", "value": fixed})
    await ctx.kube.json_patch(path, ops)
    meta = desired["metadata"]
    await ctx.kube.merge_patch(
        path, {"metadata": {"labels": meta["labels"], "annotations": meta["annotations"]}}
    )
    return Cond("WorkloadReady", True, "DeploymentUpdated", desired["metadata"]["name"])


def _owned_by(obj: dict[str, Any], owner: kopf.Body) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner.metadata.uid for ref in refs)


async def reconcile(
    ctx: OperatorContext, *, body: kopf.Body, drift: bool, logger: kopf.Logger, patch: kopf.Patch
) -> None:
    status, namespace, name = body.status, str(body.metadata.namespace), str(body.metadata.name)
    generation = body.metadata.get("generation")
    now = ctx.now()

    def report(*conds: Cond, **fields: Any) -> bool:
        return write_status(patch, status, conds, generation=generation, now=now, fields=fields)

    try:
        spec = TaskDefinitionSpec.model_validate(dict(body.spec))
    except ValidationError as exc:
        report(Cond("Validated", False, "InvalidSpec", describe_errors(exc)))
        return
    try:
        handle, env = await ctx.nats_for(namespace, spec.nats_ref)
        outcome = await apply_taskdefinition(handle, namespace, name, spec, generation=generation)
    except MissingReference as exc:
        report(Cond("Synced", False, exc.reason, str(exc)))
        raise kopf.TemporaryError(str(exc), delay=ctx.config.retry_delay) from exc
    except RETRYABLE as exc:
        report(
            Cond("Synced", False, "NatsUnavailable", str(exc)), Cond("ConsumerReady", None, "NatsUnavailable")
        )
        raise kopf.TemporaryError(f"NATS unavailable: {exc}", delay=ctx.config.retry_delay) from exc
    if outcome.action == "invalid":
        report(*outcome.conditions)
        return
    try:
        workload = await ensure_deployment(ctx, body, spec, env)
    except RETRYABLE as exc:
        workload = Cond("WorkloadReady", False, "DeploymentFailed", str(exc))
    fields = dict(outcome.status)
    conds = list(outcome.conditions)
    drop = [] if _autoscaled(spec) else ["ScalingActive"]
    if workload.reason == "NoWorkload":
        drop.append("WorkloadReady")
        fields["deployment"] = None  # removes the field
    else:
        conds.append(workload)
        fields["deployment"] = deployment_name(name)
    write_status(patch, status, conds, generation=generation, now=now, fields=fields, drop=drop)
    changed = outcome.action != "unchanged" or workload.reason in ("DeploymentCreated", "DeploymentUpdated")
    if changed:
        what = f"consumer {outcome.action}, {workload.reason}"
        if drift:
            kopf.warn(body, reason="DriftCorrected", message=what)
        else:
            kopf.info(body, reason="Reconciled", message=what)
    if workload.reason == "DeploymentFailed":
        raise kopf.TemporaryError(workload.message, delay=ctx.config.retry_delay)


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

    async def remove(handle: Any, namespace: str, name: str, spec: Any, body: kopf.Body) -> None:
        await delete_taskdefinition(handle, namespace, name, spec.task_type)

    register_delete(registry, ctx, RESOURCE, "taskdefinition", TaskDefinitionSpec, remove, "consumer and catalog entry")
