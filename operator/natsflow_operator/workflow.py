"""Kopf handlers of ``Workflow``: validate the BPMN, deploy it, keep it deployed, remove it.

Create, resume and spec updates run one idempotent reconcile; a timer repeats it every
``drift_interval`` seconds, which redeploys a process whose entries were deleted from the
bucket and picks up changes of a ``bpmnFrom`` ConfigMap (ConfigMaps are not watched).
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
from natsflow_operator.models import GROUP, VERSION, WorkflowSpec, describe_errors
from natsflow_operator.reconcile import apply_workflow, delete_workflow

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
        reason, message = ctx.failure(exc, namespace, spec.nats_ref)
        report(Cond("Synced", False, reason, message))
        raise kopf.TemporaryError(f"{reason}: {message}", delay=ctx.config.retry_delay) from exc
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

    async def remove(handle: Any, namespace: str, name: str, spec: Any, body: kopf.Body) -> None:
        await delete_workflow(handle, namespace, name, list(body.status.get("processIds") or []))

    register_delete(registry, ctx, RESOURCE, "workflow", WorkflowSpec, remove, "processes")
