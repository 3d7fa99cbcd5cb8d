"""Handler wiring every kind shares: reconcile on create, resume and spec update, and again on
a drift timer that recreates NATS objects deleted behind the operator's back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from natsflow.operator.context import OperatorContext

__all__ = ["Reconcile", "register_reconcile"]

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
