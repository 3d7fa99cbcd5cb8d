"""Handler wiring every kind shares: reconcile on create, resume and spec update, and again on
a drift timer that recreates NATS objects deleted behind the operator's back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import kopf
from pydantic import BaseModel, ValidationError

from natsflow_operator.context import UNAVAILABLE, OperatorContext

__all__ = ["Reconcile", "Remove", "register_delete", "register_reconcile"]

Reconcile = Callable[..., Awaitable[None]]
"""``reconcile(ctx, *, body, drift, logger, patch)`` of one kind."""


def register_reconcile(
    registry: kopf.OperatorRegistry,
    ctx: OperatorContext,
    resource: tuple[str, str, str],
    prefix: str,
    reconcile: Reconcile,
) -> None:
    """Attach ``<prefix>-create/-resume/-update`` and the ``<prefix>-drift`` timer."""

    @kopf.on.resume(*resource, id=f"{prefix}-resume", registry=registry)
    @kopf.on.create(*resource, id=f"{prefix}-create", registry=registry)
    @kopf.on.update(*resource, id=f"{prefix}-update", field="spec", registry=registry)
    async def on_change(body: kopf.Body, logger: kopf.Logger, patch: kopf.Patch, **_: Any) -> None:
        await reconcile(ctx, body=body, drift=False, logger=logger, patch=patch)

    @kopf.timer(
        *resource,
        id=f"{prefix}-drift",
        interval=ctx.config.drift_interval,
        initial_delay=ctx.config.drift_interval,
        registry=registry,
    )
    async def on_timer(body: kopf.Body, logger: kopf.Logger, patch: kopf.Patch, **_: Any) -> None:
        await reconcile(ctx, body=body, drift=True, logger=logger, patch=patch)


Remove = Callable[[Any, str, str, Any, kopf.Body], Awaitable[None]]
"""``remove(handle, namespace, name, spec, body)``: delete what the object put into NATS."""


def register_delete(
    registry: kopf.OperatorRegistry,
    ctx: OperatorContext,
    resource: tuple[str, str, str],
    prefix: str,
    spec_model: type[BaseModel],
    remove: Remove,
    retained: str,
) -> None:
    """The finalizer: remove the object's NATS objects unless ``deletionPolicy: Retain``.
    ``retained`` says what stays in NATS, for the log."""
    kind = spec_model.__name__.removesuffix("Spec")

    @kopf.on.delete(*resource, id=f"{prefix}-delete", registry=registry)
    async def on_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        try:
            spec = spec_model.model_validate(dict(body.spec))
        except ValidationError:
            logger.warning("%s spec is invalid; nothing to remove from NATS", kind)
            return
        if getattr(spec, "deletion_policy", None) == "Retain":
            logger.info("deletionPolicy Retain: %s stay in NATS", retained)
            return
        try:
            handle, _env = await ctx.nats_for(namespace, getattr(spec, "nats_ref", None))
            await remove(handle, namespace, name, spec, body)
        except UNAVAILABLE as exc:
            raise kopf.TemporaryError(f"cannot remove from NATS: {exc}", delay=ctx.config.retry_delay) from exc
