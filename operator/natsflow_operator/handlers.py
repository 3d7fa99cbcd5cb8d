"""Handler wiring every kind shares: reconcile on create, resume and spec update, and again on
a drift timer that recreates NATS objects deleted behind the operator's back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import kopf
from pydantic import BaseModel, ValidationError

from natsflow_operator.connections import NatsHandle
from natsflow_operator.context import UNAVAILABLE, MissingReference, OperatorContext
from natsflow_operator.models import NatsRef

__all__ = ["Reconcile", "Remove", "leave_previous_nats", "register_delete", "register_reconcile"]

Reconcile = Callable[..., Awaitable[None]]
"""``reconcile(ctx, *, body, drift, logger, patch, previous_ref)`` of one kind; ``previous_ref``
is the ``natsRef`` of the spec before an update (see :func:`leave_previous_nats`)."""


def register_reconcile(
    registry: kopf.OperatorRegistry,
    ctx: OperatorContext,
    resource: tuple[str, str, str],
    prefix: str,
    reconcile: Reconcile,
    when: Callable[..., bool] | None = None,
) -> None:
    """Attach ``<prefix>-create/-resume/-update`` and the ``<prefix>-drift`` timer (only for
    objects ``when`` accepts, given)."""

    @kopf.on.resume(*resource, id=f"{prefix}-resume", registry=registry, when=when)
    @kopf.on.create(*resource, id=f"{prefix}-create", registry=registry, when=when)
    @kopf.on.update(*resource, id=f"{prefix}-update", field="spec", registry=registry, when=when)
    async def on_change(
        body: kopf.Body, logger: kopf.Logger, patch: kopf.Patch, old: Any = None, **_: Any
    ) -> None:
        before = ((old or {}).get("spec") or {}).get("natsRef") if isinstance(old, dict) else None
        previous = None if old is None else (before or {}).get("name") or DEFAULT_REF
        await one_at_a_time(
            ctx,
            prefix,
            body,
            lambda: reconcile(ctx, body=body, drift=False, logger=logger, patch=patch, previous_ref=previous),
        )

    @kopf.timer(
        *resource,
        id=f"{prefix}-drift",
        interval=ctx.config.drift_interval,
        initial_delay=ctx.config.drift_interval,
        registry=registry,
        when=when,
    )
    async def on_timer(body: kopf.Body, logger: kopf.Logger, patch: kopf.Patch, **_: Any) -> None:
        await one_at_a_time(
            ctx, prefix, body, lambda: reconcile(ctx, body=body, drift=True, logger=logger, patch=patch)
        )


async def one_at_a_time(
    ctx: OperatorContext, prefix: str, body: kopf.Body, work: Callable[[], Awaitable[None]]
) -> None:
    """Kopf runs an object's timer beside its change handlers: serialise the passes per object and
    drop a pass whose body is older than one already reconciled (it would undo the newer one, for
    example recreate a consumer on the connection a changed natsRef just left)."""
    key = (prefix, str(body.metadata.namespace), str(body.metadata.uid or body.metadata.name))
    async with ctx.locks.setdefault(key, asyncio.Lock()):
        generation = int(body.metadata.get("generation") or 0)
        if generation < ctx.generations.get(key, 0):
            return
        ctx.generations[key] = generation
        await work()


Remove = Callable[[Any, str, str, Any, kopf.Body], Awaitable[None]]
"""``remove(handle, namespace, name, spec, body)``: delete what the object put into NATS."""


DEFAULT_REF = "(default)"
"""``status.natsRef`` of objects on the operator's default connection (not a Secret name)."""


def applied_ref(ref: NatsRef | None) -> str:
    """What ``status.natsRef`` records: the Secret's name, or :data:`DEFAULT_REF`."""
    return ref.name if ref else DEFAULT_REF


async def leave_previous_nats(
    ctx: OperatorContext,
    body: kopf.Body,
    spec: Any,
    current: NatsHandle | None,
    remove: Remove,
    previous_ref: str | None = None,
) -> None:
    """After ``natsRef`` changed: remove the object's NATS objects from the connection recorded in
    ``status.natsRef`` and from the one of the spec before this update (``previous_ref``), unless
    it is the same server and account. A previous Secret that is gone leaves them there, with a
    Warning Event."""
    now = applied_ref(spec.nats_ref)
    namespace, name = str(body.metadata.namespace), str(body.metadata.name)
    for previous in {body.status.get("natsRef"), previous_ref} - {None, now}:
        ref = None if previous == DEFAULT_REF else NatsRef(name=str(previous))
        try:
            handle, _ = await ctx.nats_for(namespace, ref)
        except MissingReference as exc:
            message = f"natsRef changed from {previous}; its NATS objects stay: {exc}"
            kopf.warn(body, reason="PreviousNatsUnreachable", message=message)
            continue
        if handle is not current:
            await remove(handle, namespace, name, spec, body)
            kopf.info(body, reason="NatsRefChanged", message=f"removed from the NATS of natsRef {previous}")


def register_delete(
    registry: kopf.OperatorRegistry,
    ctx: OperatorContext,
    resource: tuple[str, str, str],
    prefix: str,
    spec_model: type[BaseModel],
    remove: Remove,
    retained: str,
    revoke: Callable[[kopf.Body], Awaitable[None]] | None = None,
) -> None:
    """The finalizer: remove the object's NATS objects unless ``deletionPolicy: Retain``.
    ``retained`` says what stays in NATS, for the log. ``revoke`` runs first, whatever the
    policy (a TaskDefinition's worker user). In a namespace whose Tenant is gone there is
    nothing left to remove (its account's users are revoked, its data kept or deleted with it)."""
    kind = spec_model.__name__.removesuffix("Spec")

    @kopf.on.delete(*resource, id=f"{prefix}-delete", registry=registry)
    async def on_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        key = (prefix, namespace, str(body.metadata.uid or name))
        ctx.generations.pop(key, None)
        ctx.locks.pop(key, None)
        if revoke is not None:
            try:
                await revoke(body)
            except UNAVAILABLE as exc:
                raise kopf.TemporaryError(f"cannot revoke: {exc}", delay=ctx.config.retry_delay) from exc
        try:
            spec = spec_model.model_validate(dict(body.spec), context={"name": name})
        except ValidationError:
            logger.warning("%s spec is invalid; nothing to remove from NATS", kind)
            return
        if getattr(spec, "deletion_policy", None) == "Retain":
            logger.info("deletionPolicy Retain: %s stay in NATS", retained)
            return
        try:
            handle, _env = await ctx.nats_for(namespace, getattr(spec, "nats_ref", None))
            await remove(handle, namespace, name, spec, body)
            await leave_previous_nats(ctx, body, spec, handle, remove)  # a natsRef change not yet reconciled
        except MissingReference as exc:
            if exc.reason != "TenantNotFound":
                raise kopf.TemporaryError(
                    f"cannot remove from NATS: {exc}", delay=ctx.config.retry_delay
                ) from exc
            logger.info("%s: nothing to remove from NATS (%s)", kind, exc)
        except UNAVAILABLE as exc:
            raise kopf.TemporaryError(
                f"cannot remove from NATS: {exc}", delay=ctx.config.retry_delay
            ) from exc
