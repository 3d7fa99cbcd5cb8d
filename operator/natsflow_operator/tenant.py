"""Kopf handlers of ``Tenant`` (cluster-scoped; its name is the tenant's namespace).

Reconcile (create, resume, spec update, and a timer every drift interval): the account's keys
(created once, kept in a platform-namespace Secret), its JWT with the spec's limits signed by
the operator signing key and pushed to the resolver when its claims changed, the platform
user's ``<tenant>.creds`` in the credentials Secret, re-issued before it expires, and the users
of the remote sites in ``spec.sites`` (:mod:`natsflow_operator.sites`). Deletion (the
finalizer): with ``deletionPolicy: Delete`` every stream of the account is deleted first (the
resolver would otherwise bring the data back with the account), then every user is revoked and
the sites' Secrets deleted; ``Delete`` also removes the account JWT from the resolver and its
keys, ``Retain`` keeps both.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import kopf
from kopf._cogs.structs.references import NamespaceName, match_namespace
from natsflow_engine import layout
from natsflow_engine.errors import ClaimsUpdateError
from pydantic import ValidationError

from natsflow_operator.conditions import Cond
from natsflow_operator.context import RETRYABLE, UNAVAILABLE, MissingReference, OperatorContext, write_status
from natsflow_operator.handlers import register_reconcile
from natsflow_operator.models import GROUP, VERSION, TenantSpec, describe_errors
from natsflow_operator.sites import ensure_sites, remove_site_secrets, site_permissions
from natsflow_operator.tenancy import account_limits, creds_claims, stamp

__all__ = ["register"]

RESOURCE = (GROUP, VERSION, "tenants")


async def reconcile(
    ctx: OperatorContext,
    *,
    body: kopf.Body,
    drift: bool,
    logger: kopf.Logger,
    patch: kopf.Patch,
    previous_ref: str | None = None,
) -> None:
    name, status = str(body.metadata.name), body.status
    generation = body.metadata.get("generation")
    now = ctx.now()

    def report(*conds: Cond, **fields: Any) -> None:
        write_status(patch, status, conds, generation=generation, now=now, fields=fields)

    accounts = ctx.accounts
    if accounts is None or body.metadata.get("deletionTimestamp"):  # the finalizer's turn
        return
    try:
        spec = TenantSpec.model_validate(dict(body.spec))
        layout.validate_tenant(name)
    except ValidationError as exc:
        report(Cond("Validated", False, "InvalidSpec", describe_errors(exc)))
        return
    except ValueError as exc:
        report(Cond("Validated", False, "InvalidTenant", str(exc)))
        return
    try:
        for site in spec.sites:  # a guard: the fields' bounds keep every grant under 256 characters
            site_permissions(name, site).claims()
    except ValueError as exc:
        report(Cond("Validated", False, "InvalidSpec", f"sites: {exc}"))
        return
    try:
        account = await accounts.load_or_create(name)
        async with accounts.lock(name):
            account.limits = account_limits(spec.limits)
            pushed = not accounts.pushed(account)
            if pushed:
                await accounts.publish(account)
        creds = await accounts.platform_creds(name)
        fresh = accounts.renew(creds, account, f"platform {name}")
        if fresh is not None:
            await accounts.put_platform_creds(name, fresh.creds)
            creds = fresh.creds
        sites, sites_done = await ensure_sites(ctx, body, spec, account)
    except MissingReference as exc:
        report(Cond("Validated", True, "ValidSpec"), Cond("Synced", False, exc.reason, str(exc)))
        raise kopf.TemporaryError(str(exc), delay=ctx.config.retry_delay) from exc
    except RETRYABLE as exc:
        reason = "ResolverRefused" if isinstance(exc, ClaimsUpdateError) else ctx.failure(exc, "", None)[0]
        report(Cond("Validated", True, "ValidSpec"), Cond("Synced", False, reason, str(exc)))
        raise kopf.TemporaryError(f"{reason}: {exc}", delay=ctx.config.retry_delay) from exc
    expires = int(creds_claims(creds).get("exp") or 0) if creds else 0
    report(
        Cond("Validated", True, "ValidSpec"),
        Cond("Synced", True, "AccountPushed", account.public),
        account=account.public,
        accountIssuedAt=stamp(account.last_issued),
        credentialsExpireAt=stamp(expires) if expires else None,
        sites=sites,
    )
    done = ["account pushed"] if pushed else []
    done += ["platform credentials issued"] if fresh is not None else []
    done += sites_done
    if done:
        what = ", ".join(done)
        if drift:
            kopf.warn(body, reason="DriftCorrected", message=what)
        else:
            kopf.info(body, reason="Reconciled", message=what)


async def remove(ctx: OperatorContext, body: kopf.Body, logger: kopf.Logger) -> None:
    name = str(body.metadata.name)
    accounts = ctx.accounts
    if accounts is None:
        return
    policy = str(body.spec.get("deletionPolicy") or "Retain")
    account = await accounts.load(name)
    if account is not None:
        # a retry after the revocation below: the streams are gone already and the operator's
        # own user is revoked with the others
        since = str(body.metadata.get("deletionTimestamp") or "")
        started = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        revoked = started is not None and account.revocations.get("*", -1) >= int(started.timestamp())
        if policy == "Delete" and not revoked:
            deleted = await accounts.delete_streams(account)
            logger.info(
                "deletionPolicy Delete: deleted %d streams of account %s", len(deleted), account.public
            )
        await ctx.leave_tenant(name)
        if not revoked:
            await accounts.revoke_all(account)
        if policy == "Delete":
            await accounts.delete_claims(account)
            await accounts.forget(name)
        else:
            accounts.drop_cache(name)
            logger.info("deletionPolicy Retain: account %s keeps its keys and data", account.public)
    await remove_site_secrets(ctx, body)
    await accounts.drop_platform_creds(name)


def serves(namespaces: tuple[str, ...], name: str) -> bool:
    """Whether an operator serving ``namespaces`` (empty: all) serves the Tenant ``name``.

    Kopf watches a cluster-scoped resource cluster-wide even when the operator serves some
    namespaces only (once one of them exists), so every Tenant reaches the handlers; an operator
    restricted to some namespaces serves the Tenants of those namespaces only, matched as Kopf
    matches ``--namespace`` (globs, ``!`` exclusions), and leaves the others (and their
    finalizers) to the operator that serves them."""
    return not namespaces or any(match_namespace(NamespaceName(name), p) for p in namespaces)


def register(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    """Attach the Tenant handlers to ``registry``."""

    def served(name: str, **_: Any) -> bool:
        return serves(ctx.config.namespaces, name)

    register_reconcile(registry, ctx, RESOURCE, "tenant", reconcile, when=served)

    @kopf.on.delete(*RESOURCE, id="tenant-delete", registry=registry, when=served)
    async def on_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        key = ("tenant", str(body.metadata.namespace), str(body.metadata.uid or body.metadata.name))
        try:
            async with ctx.locks.setdefault(key, asyncio.Lock()):  # after a pass in flight
                await remove(ctx, body, logger)
            ctx.generations.pop(key, None)
            ctx.locks.pop(key, None)
        except UNAVAILABLE as exc:
            raise kopf.TemporaryError(
                f"cannot remove the account: {exc}", delay=ctx.config.retry_delay
            ) from exc
