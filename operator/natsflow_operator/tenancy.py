"""Tenant accounts as the operator keeps them (operator/JWT mode, with ``Tenant`` resources).

Where everything lives (all Secrets in the platform namespace unless said otherwise):

``<signingKeySecret>``       key ``seed``: an operator *signing* key (``SO...``). The operator's
                             root key signs only the operator JWT and never enters the cluster.
``<systemCredsSecret>``      key ``creds``: a user of the system account; account JWTs are pushed
                             with ``$SYS.REQ.CLAIMS.UPDATE`` over its connection.
``natsflow-account-<t>``     written by the operator: the account's identity seed, its own
                             signing seed (users are signed with it) and the last account JWT
                             pushed (from which its revocations and issue time are restored).
``natsflow-tenant-credentials``  written by the operator: ``<tenant>.creds`` per Ready tenant,
                             the platform user (engine, API, trigger server, console).
``<taskdef>-worker-nats``    (tenant namespace, owned by the TaskDefinition) key ``creds``: the
                             user of the TaskDefinition's workers, ``worker_permissions`` only.
``natsflow-site-<site>``     (tenant namespace, owned by the Tenant) keys ``hub.creds`` and
                             ``inbox-prefix``: the user of a remote site's leaf node link
                             (:mod:`natsflow_operator.sites`).

User JWTs expire after ``userTtl`` and are re-issued (same key, later issue time) once less than
``renewBefore`` is left; revoking a user key therefore revokes every JWT issued for it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats
from nats.aio.client import Client, RawCredentials
from nats.errors import Error as NatsError
from natsflow_engine.accounts import (
    AccountLimits,
    InvalidKeyError,
    KeyKind,
    NKey,
    Permissions,
    TenantAccount,
    UserCredentials,
    decode_jwt,
    delete_accounts,
    mint_user,
    push_account,
)
from natsflow_engine.errors import ConnectionFailedError, MissingReference

from natsflow_operator.kube import KubeClient, KubeError, paths
from natsflow_operator.models import TenantLimits, parse_quantity

__all__ = [
    "ACCOUNT_SECRET_PREFIX",
    "Accounts",
    "TenancyConfig",
    "account_limits",
    "creds_claims",
    "secret_data",
    "stamp",
]

log = logging.getLogger(__name__)

ACCOUNT_SECRET_PREFIX = "natsflow-account-"
OPERATOR_USER_TTL = 3600.0
"""Shortest lifetime of the operator's own (in-memory) user of a tenant account."""
_JWT_BEGIN = "-----BEGIN NATS USER JWT-----"
_SEED_BEGIN = "-----BEGIN USER NKEY SEED-----"


@dataclass(frozen=True)
class TenancyConfig:
    """Settings of the multi-tenant (operator mode) setup; ``OperatorConfig.tenancy``."""

    namespace: str
    """Platform namespace: the operator's Secrets are read and written there."""
    signing_key_secret: str = "natsflow-operator-signing-key"
    """Secret with the key ``seed``: an operator signing key that signs account JWTs."""
    system_creds_secret: str = "natsflow-system-credentials"
    """Secret with the key ``creds``: a system-account user (pushes account JWTs)."""
    credentials_secret: str = "natsflow-tenant-credentials"
    """Secret the operator maintains: ``<tenant>.creds`` per Ready tenant (the platform user)."""
    user_ttl: float = 86400.0
    """Seconds a minted user JWT is valid."""
    renew_before: float = 28800.0
    """Re-issue a user JWT when less than this many seconds of it are left."""


def account_limits(limits: TenantLimits) -> AccountLimits:
    """The account limits of a Tenant's spec (absent: unlimited)."""

    def size(value: str | None) -> int:
        return -1 if value is None else parse_quantity(value)

    def count(value: int | None) -> int:
        return -1 if value is None else value

    return AccountLimits(
        memory=size(limits.memory),
        disk=size(limits.disk),
        streams=count(limits.streams),
        consumers=count(limits.consumers),
        connections=count(limits.connections),
        payload=size(limits.payload),
    )


def stamp(seconds: float) -> str:
    """A unix time as an RFC 3339 UTC timestamp (status fields)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def secret_data(secret: dict[str, Any] | None) -> dict[str, str]:
    """The decoded ``data`` (and ``stringData``) of a Secret; ``{}`` for none."""
    if not secret:
        return {}
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _section(text: str, begin: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == begin and i + 1 < len(lines):
            return lines[i + 1].strip()
    raise InvalidKeyError(f"not a .creds file (no {begin})")


def creds_claims(text: str) -> dict[str, Any]:
    """The verified claims of the user JWT in a ``.creds`` text."""
    return decode_jwt(_section(text, _JWT_BEGIN))


def _creds_seed(text: str) -> NKey:
    return NKey.from_seed(_section(text, _SEED_BEGIN), KeyKind.USER)


class Accounts:
    """Tenant accounts, the system connection and user minting for one operator run."""

    def __init__(
        self,
        kube: KubeClient,
        config: TenancyConfig,
        nats_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.config = config
        self.nats_url = nats_url
        self.clock = clock
        self._accounts: dict[str, TenantAccount] = {}
        self._pushed: dict[str, str] = {}
        """Tenant -> fingerprint of the claims this process pushed last."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._cache_locks: dict[str, asyncio.Lock] = {}
        """Loading into the cache and forgetting, one at a time per tenant (a load racing a
        deletion must not cache the deleted account)."""
        self._operator_users: dict[str, UserCredentials] = {}
        self._system: tuple[str, Client] | None = None
        self._system_lock = asyncio.Lock()

    def lock(self, tenant: str) -> asyncio.Lock:
        """Changes to one account (limits, revocations) one at a time."""
        return self._locks.setdefault(tenant, asyncio.Lock())

    # ----- Secrets ----------------------------------------------------------------------------

    async def _read(self, name: str) -> dict[str, str] | None:
        found = await self.kube.get(paths.secret(self.config.namespace, name))
        return None if found is None else secret_data(found)

    async def signing_key(self) -> NKey:
        data = await self._read(self.config.signing_key_secret)
        where = f"Secret {self.config.namespace}/{self.config.signing_key_secret}"
        if data is None:
            raise MissingReference("SigningKeyNotFound", f"{where} (operator signing key) does not exist")
        try:
            return NKey.from_seed(data.get("seed", ""), KeyKind.OPERATOR)
        except InvalidKeyError as exc:
            raise MissingReference("SigningKeyInvalid", f"{where}: key 'seed' {exc}") from None

    def _account_secret(self, tenant: str) -> str:
        return f"{ACCOUNT_SECRET_PREFIX}{tenant}"

    async def load(self, tenant: str) -> TenantAccount | None:
        """The tenant's account from its Secret (cached), ``None`` when it has none."""
        async with self._cache_locks.setdefault(tenant, asyncio.Lock()):
            return await self._load(tenant)

    async def _load(self, tenant: str) -> TenantAccount | None:
        if tenant in self._accounts:
            return self._accounts[tenant]
        data = await self._read(self._account_secret(tenant))
        if data is None:
            return None
        account = TenantAccount(
            tenant,
            key=NKey.from_seed(data["account-seed"], KeyKind.ACCOUNT),
            signing_key=NKey.from_seed(data["signing-seed"], KeyKind.ACCOUNT),
        )
        if data.get("jwt"):
            claims = decode_jwt(data["jwt"])
            account.revocations = dict((claims.get("nats") or {}).get("revocations") or {})
            account.last_issued = int(claims.get("iat") or 0)
        self._accounts[tenant] = account
        return account

    async def load_or_create(self, tenant: str) -> TenantAccount:
        """The tenant's account; a new key pair and signing key, kept in a Secret, the first time."""
        async with self._cache_locks.setdefault(tenant, asyncio.Lock()):
            return await self._load_or_create(tenant)

    async def _load_or_create(self, tenant: str) -> TenantAccount:
        found = await self._load(tenant)
        if found is not None:
            return found
        account = TenantAccount(tenant)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self._account_secret(tenant),
                "namespace": self.config.namespace,
                "labels": {"app.kubernetes.io/managed-by": "natsflow-operator", "natsflow.io/tenant": tenant},
            },
            "type": "Opaque",
            "data": {"account-seed": _b64(account.key.seed), "signing-seed": _b64(account.signing_key.seed)},
        }
        try:
            await self.kube.create(paths.secrets(self.config.namespace), body)
        except KubeError as exc:  # created meanwhile: that one is the account
            if not exc.conflict:
                raise
            created = await self._load(tenant)
            if created is None:
                raise
            return created
        self._accounts[tenant] = account
        log.info("tenant %s: new NATS account %s", tenant, account.public)
        return account

    async def forget(self, tenant: str) -> None:
        """Delete the account's Secret and everything cached about it."""
        async with self._cache_locks.setdefault(tenant, asyncio.Lock()):
            await self.kube.delete(paths.secret(self.config.namespace, self._account_secret(tenant)))
            self.drop_cache(tenant)

    def drop_cache(self, tenant: str) -> None:
        self._accounts.pop(tenant, None)
        self._pushed.pop(tenant, None)
        self._operator_users.pop(tenant, None)

    # ----- the resolver -----------------------------------------------------------------------

    async def system(self) -> Client:
        """A connection as the system-account user (reopened when closed or its Secret changed)."""
        async with self._system_lock:
            data = await self._read(self.config.system_creds_secret)
            where = f"Secret {self.config.namespace}/{self.config.system_creds_secret}"
            if data is None or not data.get("creds"):
                raise MissingReference("SystemCredentialsNotFound", f"{where} (key 'creds') does not exist")
            creds = data["creds"]
            if self._system is not None:
                known, nc = self._system
                if known == creds and not nc.is_closed:
                    return nc
                self._system = None
                await nc.close()
            try:
                nc = await nats.connect(
                    self.nats_url,
                    user_credentials=RawCredentials(creds),
                    connect_timeout=5,
                    max_reconnect_attempts=3,
                    name="natsflow-operator-system",
                )
            except Exception as exc:  # nats-py raises plain OSError / TimeoutError / NoServersError
                raise ConnectionFailedError(f"cannot connect as the system account: {exc}") from exc
            self._system = (creds, nc)
            return nc

    def _fingerprint(self, account: TenantAccount) -> str:
        desired = {
            "limits": account.limits.claims(),
            "signing": account.signing_key.public,
            "revocations": sorted(account.revocations.items()),
        }
        return hashlib.sha256(json.dumps(desired, sort_keys=True).encode()).hexdigest()

    def pushed(self, account: TenantAccount) -> bool:
        """Whether this process already pushed these claims of the account."""
        return self._pushed.get(account.tenant) == self._fingerprint(account)

    async def publish(self, account: TenantAccount) -> int:
        """Mint the account JWT (later than the last), push it to the resolver, keep it in the
        account's Secret; the JWT's issue time. The caller holds :meth:`lock`."""
        self.prune(account)
        token = account.jwt(await self.signing_key())
        path = paths.secret(self.config.namespace, self._account_secret(account.tenant))
        if await self.kube.get(path) is None:  # forgotten meanwhile: never push it back
            self.drop_cache(account.tenant)
            raise MissingReference("TenantNotFound", f"the account of tenant {account.tenant} was deleted")
        await push_account(await self.system(), token)
        await self.kube.merge_patch(path, {"data": {"jwt": _b64(token)}})
        self._pushed[account.tenant] = self._fingerprint(account)
        return account.last_issued

    def prune(self, account: TenantAccount) -> None:
        """Forget revocations older than a user JWT lives: every JWT they name has expired."""
        horizon = self.clock() - self.config.user_ttl - 60
        for user, when in list(account.revocations.items()):
            if user != "*" and when < horizon:
                del account.revocations[user]

    async def revoke(self, tenant: str, user: str) -> None:
        """Revoke every JWT issued so far for ``user`` and push the account."""
        account = await self.load(tenant)
        if account is None:
            return
        async with self.lock(tenant):
            account.revoke(user, at=int(self.clock()))
            await self.publish(account)

    async def revoke_all(self, account: TenantAccount) -> None:
        async with self.lock(account.tenant):
            account.revoke_all(at=int(self.clock()))
            await self.publish(account)

    async def delete_claims(self, account: TenantAccount) -> None:
        """Remove the account JWT from the resolver (its users are disconnected)."""
        await delete_accounts(await self.system(), await self.signing_key(), [account.public])

    # ----- users ------------------------------------------------------------------------------

    def issue(
        self,
        account: TenantAccount,
        name: str,
        permissions: Permissions | None = None,
        *,
        previous: str | None = None,
        ttl: float | None = None,
    ) -> UserCredentials:
        """A user JWT valid for ``ttl`` (default ``user_ttl``); with ``previous`` (a ``.creds``
        text of this account) the same user key gets a new JWT, so revoking the key revokes both."""
        user = _creds_seed(previous) if previous else NKey.generate(KeyKind.USER)
        # later than a revocation of every user (a Tenant deleted with Retain, then recreated)
        issued = max(int(self.clock()), account.revocations.get("*", -1) + 1)
        token = mint_user(
            user.public,
            account.signing_key,
            account=account.public,
            name=name,
            permissions=permissions,
            issued_at=issued,
            expires=int(self.clock() + (ttl or self.config.user_ttl)),
        )
        return UserCredentials(user.public, token, user.seed)

    def current(
        self,
        creds: str | None,
        account: TenantAccount,
        permissions: Permissions | None,
        renew_before: float | None = None,
    ) -> bool:
        """Whether ``creds`` are a user of ``account`` with these permissions, not yet due."""
        if not creds:
            return False
        try:
            claims = creds_claims(creds)
        except (InvalidKeyError, ValueError):
            return False
        nats_claims = claims.get("nats") or {}
        wanted = (permissions or Permissions()).claims()
        return (
            nats_claims.get("issuer_account") == account.public
            and claims.get("iss") == account.signing_key.public
            and {k: nats_claims.get(k) for k in wanted} == wanted
            and int(claims.get("exp") or 0) - self.clock() > (renew_before or self.config.renew_before)
        )

    def renew(
        self,
        creds: str | None,
        account: TenantAccount,
        name: str,
        permissions: Permissions | None = None,
        *,
        ttl: float | None = None,
    ) -> UserCredentials | None:
        """New credentials when ``creds`` are missing, of another account, or due (a third of
        ``ttl`` left when given); else ``None``. A due user of the same account keeps its key."""
        if self.current(creds, account, permissions, ttl / 3 if ttl else None):
            return None
        keep = None
        if creds:
            try:
                if (creds_claims(creds).get("nats") or {}).get("issuer_account") == account.public:
                    keep = creds
            except (InvalidKeyError, ValueError):
                keep = None
        return self.issue(account, name, permissions, previous=keep, ttl=ttl)

    def operator_user(self, account: TenantAccount) -> str:
        """``.creds`` text of the operator's own user in the account. It never leaves the process
        and lives at least :data:`OPERATOR_USER_TTL`: each renewal means a new connection."""
        known = self._operator_users.get(account.tenant)
        ttl = max(self.config.user_ttl, OPERATOR_USER_TTL)
        fresh = self.renew(known.creds if known else None, account, "natsflow-operator", ttl=ttl)
        if fresh is not None:
            self._operator_users[account.tenant] = fresh
            return fresh.creds
        assert known is not None
        return known.creds

    # ----- the platform credentials Secret ----------------------------------------------------

    async def platform_creds(self, tenant: str) -> str | None:
        data = await self._read(self.config.credentials_secret)
        return (data or {}).get(f"{tenant}.creds")

    async def put_platform_creds(self, tenant: str, creds: str) -> None:
        path = paths.secret(self.config.namespace, self.config.credentials_secret)
        entry = {f"{tenant}.creds": _b64(creds)}
        if await self.kube.get(path) is None:
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": self.config.credentials_secret,
                    "namespace": self.config.namespace,
                    "labels": {"app.kubernetes.io/managed-by": "natsflow-operator"},
                },
                "type": "Opaque",
                "data": entry,
            }
            try:
                await self.kube.create(paths.secrets(self.config.namespace), body)
                return
            except KubeError as exc:  # created meanwhile by another tenant's pass: patch it
                if not exc.conflict:
                    raise
        await self.kube.merge_patch(path, {"data": entry})

    async def drop_platform_creds(self, tenant: str) -> None:
        path = paths.secret(self.config.namespace, self.config.credentials_secret)
        found = await self.kube.get(path)
        if found is not None and f"{tenant}.creds" in (found.get("data") or {}):
            await self.kube.merge_patch(path, {"data": {f"{tenant}.creds": None}})

    # ----- data -------------------------------------------------------------------------------

    async def delete_streams(self, account: TenantAccount) -> list[str]:
        """Delete every stream of the account (KV buckets included); their names."""
        try:
            nc = await nats.connect(
                self.nats_url,
                user_credentials=RawCredentials(self.operator_user(account)),
                connect_timeout=5,
                allow_reconnect=False,
                name="natsflow-operator-cleanup",
            )
        except Exception as exc:  # nats-py raises plain OSError / TimeoutError / NoServersError
            raise ConnectionFailedError(
                f"cannot connect to tenant {account.tenant}'s account: {exc}"
            ) from exc
        try:
            js = nc.jetstream(timeout=10)
            names = [s.config.name for s in await js.streams_info() if s.config.name]
            for name in names:
                await js.delete_stream(name)
            return names
        finally:
            await nc.close()

    async def close(self) -> None:
        if self._system is not None:
            _, nc = self._system
            self._system = None
            try:
                await nc.close()
            except NatsError:
                log.debug("closing the system connection failed", exc_info=True)
