"""Kopf handlers of ``Trigger``: catalog entry for the trigger server and its durable consumer.

The trigger server (engine side) reads ``nf_triggers`` and pulls from the consumer this
operator creates on the stream that stores the subject. When no stream stores it, the operator
creates a capture stream and deletes it again with its last trigger.
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
from natsflow_operator.kube import paths
from natsflow_operator.models import GROUP, VERSION, TriggerSpec, describe_errors
from natsflow_operator.reconcile import apply_trigger, delete_trigger

__all__ = ["register"]

RESOURCE = (GROUP, VERSION, "triggers")


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
        spec = TriggerSpec.model_validate(dict(body.spec))
    except ValidationError as exc:
        report(Cond("Validated", False, "InvalidSpec", describe_errors(exc)))
        return
    try:
        process_id = await _process_of(ctx, namespace, spec)
        if isinstance(process_id, Cond):
            report(process_id)
            if process_id.reason in ("WorkflowNotFound", "WorkflowNotReady"):
                raise kopf.TemporaryError(process_id.message, delay=ctx.config.retry_delay)
            return
        handle, _ = await ctx.nats_for(namespace, spec.nats_ref)
        await leave_previous_nats(ctx, body, spec, handle, remove, previous_ref)
        outcome = await apply_trigger(
            handle,
            namespace,
            name,
            spec,
            previous_stream=status.get("stream"),
            generation=generation,
            process_id=process_id,
        )
    except MissingReference as exc:
        report(Cond("Synced", False, exc.reason, str(exc)))
        raise kopf.TemporaryError(str(exc), delay=ctx.config.retry_delay) from exc
    except RETRYABLE as exc:
        reason, message = ctx.failure(exc, namespace, spec.nats_ref)
        report(Cond("Synced", False, reason, message), Cond("ConsumerReady", None, reason))
        raise kopf.TemporaryError(f"{reason}: {message}", delay=ctx.config.retry_delay) from exc
    report(*outcome.conditions, **outcome.status, natsRef=applied_ref(spec.nats_ref))
    if outcome.action == "failed":
        raise kopf.TemporaryError(outcome.message, delay=ctx.config.retry_delay)
    if outcome.action not in ("unchanged", "invalid"):
        what = f"{outcome.status.get('stream')}/{outcome.status.get('consumer')} {outcome.action}"
        if drift:
            kopf.warn(body, reason="DriftCorrected", message=what)
        else:
            kopf.info(body, reason="Reconciled", message=what)


async def _process_of(ctx: OperatorContext, namespace: str, spec: TriggerSpec) -> str | Cond | None:
    """The process ``workflowRef.name`` names, from the Workflow object's status."""
    ref = spec.workflow_ref
    if ref.name is None:
        return None
    found = await ctx.kube.get(paths.custom(GROUP, VERSION, "workflows", namespace, ref.name))
    if found is None:
        return Cond("Synced", False, "WorkflowNotFound", f"Workflow {namespace}/{ref.name} does not exist")
    deployed = [str(p) for p in (found.get("status") or {}).get("processIds") or []]
    if not deployed:
        return Cond("Synced", False, "WorkflowNotReady", f"Workflow {ref.name} has deployed no process yet")
    process_id, _ = ref.pick(deployed)
    if process_id is None and ref.process_id:
        message = f"Workflow {ref.name} deploys {', '.join(deployed)}, not {ref.process_id!r}"
        return Cond("Validated", False, "ProcessNotInWorkflow", message)
    if process_id is None:
        message = f"Workflow {ref.name} deploys {', '.join(deployed)}: set workflowRef.processId"
        return Cond("Validated", False, "AmbiguousProcess", message)
    return process_id


async def remove(handle: Any, namespace: str, name: str, spec: Any, body: kopf.Body) -> None:
    await delete_trigger(handle, namespace, name, body.status.get("stream"))


def register(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    """Attach the Trigger handlers to ``registry``."""

    register_reconcile(registry, ctx, RESOURCE, "trigger", reconcile)

    register_delete(registry, ctx, RESOURCE, "trigger", TriggerSpec, remove, "consumer and catalog entry")
