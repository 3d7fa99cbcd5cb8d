"""Kopf handlers of ``Workflow``: validate the BPMN, deploy it, keep it deployed, remove it.

Create, resume and spec updates run one idempotent reconcile; a timer repeats it every
``drift_interval`` seconds, which redeploys a process whose entries were deleted from the
bucket and picks up changes of a ``bpmnFrom`` ConfigMap (ConfigMaps are not watched).
"""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from natsflow.operator.conditions import Cond
from natsflow.operator.context import (
    RETRYABLE,
    UNAVAILABLE,
    MissingReference,
    OperatorContext,
    write_status,
)
from natsflow.operator.handlers import register_reconcile
from natsflow.operator.models import GROUP, VERSION, WorkflowSpec, describe_errors
from natsflow.operator.reconcile import apply_workflow, delete_workflow

__all__ = ["register"]

RESOURCE = (GROUP, VERSION, "workflows")


async def reconcile(
    ctx: OperatorContext,
    *,
    body: kopf.Body,
    drift: bool,
    logger: kopf.Logger,
    patch: kopf.Patch,
) -> None:
    """Validate and deploy; write conditions; raise ``TemporaryError`` when NATS is unavailable."""
    status, namespace, name = body.status, str(body.metadata.namespace), str(body.metadata.name)
    generation = body.metadata.get("generation")
    now = ctx.now()

    def report(*conds: Cond, **fields: Any) -> bool:
        return write_status(patch, status, conds, generation=generation, now=now, fields=fields)

    try:
        spec = WorkflowSpec.model_validate(dict(body.spec))
    except ValidationError as exc:
        report(Cond("Validated", False, "InvalidSpec", describe_errors(exc)))
        return
    try:
        source = await ctx.bpmn_source(namespace, spec)
        handle, _ = await ctx.nats_for(namespace, spec.nats_ref)
        outcome = await apply_workflow(
            handle,
            namespace,
            name,
            source,
            previous=list(status.get("processIds") or []),
            prune=spec.deletion_policy == "Delete",
        )
    except MissingReference as exc:
        kind = "Validated" if exc.reason.startswith("ConfigMap") else "Synced"
        report(Cond(kind, False, exc.reason, str(exc)))
        raise kopf.TemporaryError(str(exc), delay=ctx.config.retry_delay) from exc
    except RETRYABLE as exc:
        report(Cond("Synced", False, "NatsUnavailable", str(exc)))
        raise kopf.TemporaryError(f"NATS unavailable: {exc}", delay=ctx.config.retry_delay) from exc
    logger.debug("reconciled (%s): %s", "drift check" if drift else "change", outcome.action)
    changed = report(*outcome.conditions, **outcome.status)
    if outcome.action == "invalid" and changed:
        logger.warning("Workflow not deployed: %s", outcome.message)
        kopf.warn(body, reason="InvalidBpmn", message=outcome.message[:1000])
    elif outcome.action != "unchanged":
        message = ", ".join(f"{p['processId']} v{p['version']}" for p in outcome.status["processes"])
        if drift:
            kopf.warn(body, reason="DriftCorrected", message=f"redeployed {message}")
        else:
            kopf.info(body, reason="Deployed", message=message)


def register(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    """Attach the Workflow handlers to ``registry``."""

    register_reconcile(registry, ctx, RESOURCE, "workflow", reconcile)

    @kopf.on.delete(*RESOURCE, id="workflow-delete", registry=registry)
    async def on_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        try:
            spec = WorkflowSpec.model_validate(dict(body.spec))
        except ValidationError:
            logger.warning("Workflow spec is invalid; nothing to remove from NATS")
            return
        if spec.deletion_policy == "Retain":
            logger.info("deletionPolicy Retain: processes stay deployed in NATS")
            return
        try:
            handle, _env = await ctx.nats_for(namespace, spec.nats_ref)
            await delete_workflow(handle, namespace, name, list(body.status.get("processIds") or []))
        except UNAVAILABLE as exc:
            raise kopf.TemporaryError(
                f"cannot remove from NATS: {exc}", delay=ctx.config.retry_delay
            ) from exc
