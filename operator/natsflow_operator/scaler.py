"""The autoscaler loop of one TaskDefinition: read the backlog, decide, scale, report.

It scales the Deployment ``<name>-worker``: the one the operator created, or, for a
TaskDefinition without ``image`` and ``podTemplate``, one the user brings (from Git).

The decision is :func:`natsflow_operator.autoscale.decide` (pure); this module is its I/O:
consumer info from NATS, the Deployment's replica count and scale subresource, the status
subresource of the TaskDefinition and a Kubernetes Event on every change. The daemon reads the
live spec on every poll, so ``pollingInterval`` and the bounds apply without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime
from typing import Any

import kopf
from natsflow_engine import layout
from pydantic import ValidationError

from natsflow_operator.autoscale import Decision, History, Policy, decide
from natsflow_operator.conditions import Cond, merge_conditions
from natsflow_operator.context import RETRYABLE, UNAVAILABLE, OperatorContext
from natsflow_operator.kube import paths
from natsflow_operator.models import GROUP, VERSION, Autoscaling, TaskDefinitionSpec, parse_duration
from natsflow_operator.workload import deployment_name

__all__ = ["policy_of", "run_autoscaler"]

log = logging.getLogger(__name__)


def policy_of(spec: TaskDefinitionSpec, scaling: Autoscaling) -> Policy:
    """The decision's parameters. Replicas beyond ``ceil(concurrency / workerConcurrency)`` could
    never have a job in flight (the consumer's ``max_ack_pending`` is ``concurrency``), so that
    is the ceiling below ``maxReplicas``; the default target is one pod's concurrency."""
    useful = math.ceil(spec.concurrency / spec.worker_concurrency)
    return Policy(
        min_replicas=scaling.min_replicas,
        max_replicas=max(min(scaling.max_replicas, useful), scaling.min_replicas, 1),
        target=scaling.target_pending_per_replica or spec.worker_concurrency,
        activation_threshold=scaling.activation_threshold,
        cooldown=parse_duration(scaling.cooldown_period),
        stabilization=parse_duration(scaling.scale_down_stabilization),
    )


def _stamp(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


async def _backlog(ctx: OperatorContext, namespace: str, spec: TaskDefinitionSpec) -> tuple[int | None, str]:
    """``num_pending + num_ack_pending`` of the jobs consumer, or ``None`` and the error."""
    try:
        handle, _ = await ctx.nats_for(namespace, spec.nats_ref)
        info = await handle.js.consumer_info(
            layout.STREAM_JOBS, layout.job_consumer(namespace, spec.task_type)
        )
    except UNAVAILABLE as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return (info.num_pending or 0) + (info.num_ack_pending or 0), ""


async def _report(
    ctx: OperatorContext, body: kopf.Body, decision: Decision, lag: int | None, error: str, scaled: bool
) -> None:
    """Write the autoscaler's status fields and ``ScalingActive`` when they changed."""
    status = body.status
    cond = (
        Cond("ScalingActive", False, "MetricUnavailable", error)
        if lag is None
        else Cond("ScalingActive", True, decision.reason, decision.message)
    )
    conditions = merge_conditions(
        status.get("conditions"), [cond], generation=status.get("observedGeneration"), now=ctx.now()
    )
    fields: dict[str, Any] = {
        "replicas": decision.replicas,
        "desiredReplicas": decision.recommended,
        "lastActiveTime": _stamp(decision.history.last_active),
    }
    if lag is not None:
        fields["pending"] = lag
    if scaled:
        fields["lastScaleTime"] = _stamp(ctx.clock())
    changes = {k: v for k, v in fields.items() if v is not None and status.get(k) != v}
    # The message carries the backlog; rewrite the conditions only when more than that changed.
    old = {c.get("type"): (c.get("status"), c.get("reason")) for c in status.get("conditions") or []}
    new = {c["type"]: (c["status"], c["reason"]) for c in conditions}
    if old != new or scaled:
        changes["conditions"] = conditions
    if changes:
        path = paths.custom(
            GROUP, VERSION, "taskdefinitions", str(body.metadata.namespace), str(body.metadata.name)
        )
        await ctx.kube.merge_patch(path + "/status", {"status": changes})


async def run_autoscaler(
    ctx: OperatorContext, body: kopf.Body, stopped: kopf.DaemonStopped, logger: kopf.Logger
) -> None:
    """Poll until the daemon is stopped (object deleted, autoscaling disabled, operator exits)."""
    state = _State(History(last_active=_epoch(body.status.get("lastActiveTime"))))
    while not stopped:
        try:
            delay = await state.poll(ctx, body, logger)
        except RETRYABLE as exc:
            logger.warning("autoscaler poll failed: %s", exc)
            delay = ctx.config.retry_delay
        # Not ``stopped.wait(delay)``: Kopf runs that wait in a task of its own, which an
        # operator exiting meanwhile finds unfinished and re-raises its TimeoutError. Kopf
        # cancels the daemon when it stops (cancellation_timeout), which ends this sleep.
        await asyncio.sleep(delay)


class _State:
    """The decision history carried from one poll to the next."""

    @staticmethod
    def _count(
        tenant: str,
        name: str,
        task_type: str,
        current: int,
        replicas: int,
        lag: int | None,
        ctx: OperatorContext,
    ) -> None:
        """Prometheus: the backlog gauge and the decision counter (up, down, hold, error)."""
        if lag is not None:
            ctx.metrics.jobs_pending.labels(tenant, task_type).set(lag)
        direction = (
            "error"
            if lag is None
            else "up"
            if replicas > current
            else "down"
            if replicas < current
            else "hold"
        )
        ctx.metrics.autoscaler_decisions_total.labels(tenant, name, direction).inc()

    def __init__(self, history: History) -> None:
        self.history = history
        self.metric_failing = False

    async def poll(self, ctx: OperatorContext, body: kopf.Body, logger: kopf.Logger) -> float:
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        try:
            spec = TaskDefinitionSpec.model_validate(dict(body.spec), context={"name": name})
        except ValidationError:
            return 5.0
        scaling = spec.autoscaling
        if scaling is None or not scaling.enabled:
            return 5.0
        interval = parse_duration(scaling.polling_interval)
        deployment = await ctx.kube.get(paths.deployment(namespace, deployment_name(name)))
        if deployment is None:
            return interval  # the reconcile handler creates it; nothing to scale yet
        owners = {ref.get("uid") for ref in (deployment.get("metadata") or {}).get("ownerReferences") or []}
        if (spec.image or spec.pod_template) and body.metadata.uid not in owners:
            return interval  # someone else's Deployment (WorkloadReady reports the conflict)
        current = int((deployment.get("spec") or {}).get("replicas", 1))
        lag, error = await _backlog(ctx, namespace, spec)
        decision = decide(policy_of(spec, scaling), current, lag, ctx.clock(), self.history)
        self.history = decision.history
        if decision.changed:
            scale = paths.deployment(namespace, deployment_name(name), "scale")
            await ctx.kube.merge_patch(scale, {"spec": {"replicas": decision.replicas}})
            logger.info("scaled from %d to %d replicas: %s", current, decision.replicas, decision.message)
            kopf.info(body, reason="Scaled", message=f"{current} -> {decision.replicas}: {decision.message}")
        self._count(namespace, name, spec.task_type, current, decision.replicas, lag, ctx)
        if lag is None and not self.metric_failing:  # log the transition, not every poll
            logger.warning("backlog unavailable, keeping %d replicas: %s", current, error)
        self.metric_failing = lag is None
        await _report(ctx, body, decision, lag, error, decision.changed)
        return interval
