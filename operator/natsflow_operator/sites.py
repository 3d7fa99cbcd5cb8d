"""The NATS users of a tenant's remote sites (``Tenant.spec.sites``).

A leaf node server at a remote site connects to the platform's servers (the hub) as one user of
the tenant's account and carries the site's workers and trigger publishers over that link. The
operator mints that user per site and writes it as the Secret ``natsflow-site-<name>`` in the
tenant namespace (owned by the Tenant; keys ``hub.creds`` and ``inbox-prefix``), re-issues it
before it expires (same user key), and revokes it when the site leaves the spec; the Tenant's
deletion revokes every user of the account and deletes the Secrets.

What the user may do (:func:`site_permissions`) is what a leaf link needs, measured with a hub in
operator mode and a leaf on loopback (``tests/operator/test_operator_site_link.py``):

- JetStream requests cross the link addressed to the hub's domain, so the grants name
  ``$JS.<domain>.API`` (the workers' own grants name ``$JS.API``): the info of, and pulls from,
  the job consumers of the site's task types, and acknowledgements on them;
- results: ``nf.cmd.>`` less every subject that is not a result (``nf.cmd.*.*``, longer ones).
  The hub forwards the command stream's interest (``nf.cmd.>``) over the link only to a user
  that may publish on all of it, and a leaf sends nothing for which the hub forwarded no
  interest: a grant of the task types' result subjects alone leaves the workers' results
  without responders (measured). The engine refuses a result that answers no job of its type;
- the subjects of ``spec.sites[].publish`` (a Trigger's subject) for applications at the site;
- replies only under the site's inbox prefix (``_INBOX_site_<name>``), never ``_INBOX.>``:
  the site's clients connect with it (``NATS_INBOX_PREFIX`` for ``natsflow worker``).

Nothing else: no KV, stream or history reads, no other consumer, no other command, no
subscription outside its inbox. A change of the grants (task types, subjects, domain) mints a
new user key and revokes the old one, so the broader JWT stops working at once.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from natsflow_engine import layout
from natsflow_engine.accounts import InvalidKeyError, KeyKind, NKey, Permissions, TenantAccount
from natsflow_engine.errors import MissingReference

from natsflow_operator.context import OperatorContext
from natsflow_operator.kube import paths
from natsflow_operator.models import TenantSite, TenantSpec
from natsflow_operator.tenancy import Accounts, creds_claims, secret_data, stamp
from natsflow_operator.workercreds import owned_by, write_owned_secret

__all__ = [
    "CREDS_KEY",
    "INBOX_KEY",
    "ensure_sites",
    "remove_site_secrets",
    "site_inbox_prefix",
    "site_permissions",
    "site_secret_name",
]

log = logging.getLogger(__name__)

CREDS_KEY = "hub.creds"
INBOX_KEY = "inbox-prefix"
SITE_LABEL = "natsflow.io/site"


def site_secret_name(site: str) -> str:
    return f"natsflow-site-{site}"


def site_inbox_prefix(site: str) -> str:
    """``_INBOX_site_<name>``: one token, outside ``_INBOX.>`` and other sites' prefixes."""
    return f"_INBOX_site_{site}"


def site_permissions(tenant: str, site: TenantSite) -> Permissions:
    """What the leaf link of ``site`` may carry into and out of ``tenant``'s account."""
    api = f"$JS.{site.js_domain}.API"
    publish: list[str] = []
    for task_type in site.task_types:
        consumer = layout.job_consumer(layout.validate_tenant(tenant), task_type)
        publish += [
            f"{api}.CONSUMER.INFO.{layout.STREAM_JOBS}.{consumer}",
            f"{api}.CONSUMER.MSG.NEXT.{layout.STREAM_JOBS}.{consumer}",
            f"$JS.ACK.{layout.STREAM_JOBS}.{consumer}.>",
        ]
    deny: list[str] = []
    if site.task_types:
        publish.append(layout.COMMAND_SUBJECTS)
        deny = ["nf.cmd.*.*", "nf.cmd.*.*.*.>"]  # commands that are not results
    publish += site.publish
    return Permissions(publish=publish, subscribe=[f"{site_inbox_prefix(site.name)}.>"], deny_publish=deny)


def _user_of(creds: str | None) -> tuple[str | None, dict[str, Any]]:
    """The user key and the ``nats`` claims of a ``.creds`` text (``None`` when unreadable)."""
    if not creds:
        return None, {}
    try:
        claims = creds_claims(creds)
    except (InvalidKeyError, ValueError):
        return None, {}
    return str(claims.get("sub")), dict(claims.get("nats") or {})


def _known_user(entry: dict[str, Any] | None) -> str | None:
    """The user key a status entry names, when it is one."""
    try:
        return NKey.check_public(str((entry or {}).get("user") or ""), KeyKind.USER)
    except InvalidKeyError:
        return None


async def _revoke(accounts: Accounts, tenant: str, user: str, why: str) -> None:
    await accounts.revoke(tenant, user)
    log.info("Tenant %s: site user %s revoked (%s)", tenant, user, why)


async def _ensure_site(
    ctx: OperatorContext,
    accounts: Accounts,
    body: kopf.Body,
    account: TenantAccount,
    site: TenantSite,
    previous: dict[str, Any] | None,
) -> tuple[dict[str, Any], bool]:
    tenant = str(body.metadata.name)
    secret = site_secret_name(site.name)
    path = paths.secret(tenant, secret)
    existing = await ctx.kube.get(path)
    if existing is not None and not owned_by(existing, body):
        raise MissingReference(
            "CredentialsSecretConflict", f"Secret {tenant}/{secret} exists and is not owned by Tenant {tenant}"
        )
    permissions = site_permissions(tenant, site)
    creds = secret_data(existing).get(CREDS_KEY)
    issued = False
    if not accounts.current(creds, account, permissions):
        user, claims = _user_of(creds)
        wanted = permissions.claims()
        same = claims.get("issuer_account") == account.public and all(
            claims.get(k) == v for k, v in wanted.items()
        )
        # the same grants: a later JWT of the same key; other grants: a new key, the old revoked
        fresh = accounts.issue(
            account, f"site {tenant}/{site.name}"[:128], permissions, previous=creds if same else None
        )
        await write_owned_secret(
            ctx,
            body,
            tenant,
            secret,
            {CREDS_KEY: fresh.creds, INBOX_KEY: site_inbox_prefix(site.name)},
            labels={SITE_LABEL: site.name},
            exists=existing is not None,
        )
        log.info("Tenant %s: credentials of site %s issued for user %s", tenant, site.name, fresh.public)
        if user is not None and user != fresh.public and claims.get("issuer_account") == account.public:
            await _revoke(accounts, tenant, user, f"site {site.name} has other grants")
        creds, issued = fresh.creds, True
    user, _ = _user_of(creds)
    known = _known_user(previous)
    if known is not None and known != user:  # its Secret was deleted or replaced meanwhile
        await _revoke(accounts, tenant, known, f"site {site.name} has a new user")
    expires = int(creds_claims(creds or "").get("exp") or 0)
    entry = {
        "name": site.name,
        "secret": secret,
        "user": user,
        "inboxPrefix": site_inbox_prefix(site.name),
        "credentialsExpireAt": stamp(expires),
    }
    return entry, issued


async def ensure_sites(
    ctx: OperatorContext, body: kopf.Body, spec: TenantSpec, account: TenantAccount
) -> tuple[list[dict[str, Any]], list[str]]:
    """Mint, re-issue and revoke the sites' users; the status entries and what was done."""
    accounts = ctx.accounts
    assert accounts is not None
    previous = {str(e.get("name")): dict(e) for e in body.status.get("sites") or [] if isinstance(e, dict)}
    entries: list[dict[str, Any]] = []
    done: list[str] = []
    for site in spec.sites:
        entry, issued = await _ensure_site(ctx, accounts, body, account, site, previous.get(site.name))
        entries.append(entry)
        if issued:
            done.append(f"site {site.name} credentials issued")
    wanted = {site.name for site in spec.sites}
    for name, entry in previous.items():
        if name not in wanted:
            await _remove_site(ctx, accounts, body, name, entry)
            done.append(f"site {name} revoked")
    return entries, done


async def _remove_site(
    ctx: OperatorContext, accounts: Accounts, body: kopf.Body, name: str, entry: dict[str, Any]
) -> None:
    tenant = str(body.metadata.name)
    path = paths.secret(tenant, site_secret_name(name))
    existing = await ctx.kube.get(path)
    owned = existing is not None and owned_by(existing, body)
    users = {_known_user(entry), _user_of(secret_data(existing).get(CREDS_KEY))[0] if owned else None}
    for user in sorted(u for u in users if u is not None):
        await _revoke(accounts, tenant, user, f"site {name} removed from the spec")
    if owned:
        await ctx.kube.delete(path)


async def remove_site_secrets(ctx: OperatorContext, body: kopf.Body) -> None:
    """Delete the Secrets of every site of a Tenant being deleted (its users are revoked with
    the account's; kmock and a finalizer-first deletion leave no garbage collector to it)."""
    tenant = str(body.metadata.name)
    names = {str(s.get("name")) for s in body.spec.get("sites") or [] if isinstance(s, dict)}
    names |= {str(s.get("name")) for s in body.status.get("sites") or [] if isinstance(s, dict)}
    for name in sorted(names):
        path = paths.secret(tenant, site_secret_name(name))
        existing = await ctx.kube.get(path)
        if existing is not None and owned_by(existing, body):
            await ctx.kube.delete(path)
