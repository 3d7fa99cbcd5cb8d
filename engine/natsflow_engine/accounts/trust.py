"""The chain of trust natsflow mints: an operator with a signing key and a system account, and
one account per tenant with its own signing key, limits and revocations.

The operator's root key signs only the operator JWT (it may then stay offline); accounts are
signed by the operator signing key, users by the account signing key. Account JWTs reach a
running server through ``$SYS.REQ.CLAIMS.UPDATE`` (:func:`push_account`), sent by a user of the
system account.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.errors import Error as NatsError

from natsflow_engine.accounts.creds import UserCredentials, new_user
from natsflow_engine.accounts.jwt import (
    AccountLimits,
    Permissions,
    mint_account,
    mint_delete_request,
    mint_operator,
)
from natsflow_engine.accounts.keys import KeyKind, NKey
from natsflow_engine.errors import ClaimsUpdateError

__all__ = ["ClaimsUpdateError", "OperatorTrust", "TenantAccount", "delete_accounts", "push_account"]

CLAIMS_UPDATE = "$SYS.REQ.CLAIMS.UPDATE"
CLAIMS_DELETE = "$SYS.REQ.CLAIMS.DELETE"


@dataclass(frozen=True)
class OperatorTrust:
    """An operator, its signing key and the system account (with one user for claim updates)."""

    name: str
    operator: NKey = field(repr=False)
    signing_key: NKey = field(repr=False)
    system_account: NKey = field(repr=False)
    system_user: UserCredentials = field(repr=False)
    jwt: str = field(repr=False)
    system_account_jwt: str = field(repr=False)

    @classmethod
    def create(cls, name: str = "natsflow") -> OperatorTrust:
        operator = NKey.generate(KeyKind.OPERATOR)
        signing = NKey.generate(KeyKind.OPERATOR)
        system = NKey.generate(KeyKind.ACCOUNT)
        op_jwt = mint_operator(
            operator, name=name, signing_keys=[signing.public], system_account=system.public
        )
        # the system account has no JetStream (nats-server refuses it there)
        sys_jwt = mint_account(system.public, signing, name="SYS", limits=AccountLimits(memory=0, disk=0))
        sys_user = new_user(system, account=system.public, name="sys")
        return cls(name, operator, signing, system, sys_user, op_jwt, sys_jwt)


@dataclass
class TenantAccount:
    """One tenant's account: identity key, signing key, limits, revoked users."""

    tenant: str
    limits: AccountLimits = field(default_factory=AccountLimits)
    key: NKey = field(default_factory=lambda: NKey.generate(KeyKind.ACCOUNT), repr=False)
    signing_key: NKey = field(default_factory=lambda: NKey.generate(KeyKind.ACCOUNT), repr=False)
    revocations: dict[str, int] = field(default_factory=dict)
    last_issued: int = 0
    """Issue time of the last JWT minted; each new one is later (see :meth:`jwt`)."""

    @property
    def public(self) -> str:
        return self.key.public

    def jwt(self, operator_signing_key: NKey, *, issued_at: int | None = None) -> str:
        """The account JWT. Without ``issued_at`` it is issued now, or one second after the last
        one if that was this second: nats-server ignores an account JWT pushed after the
        account's deletion unless it was issued later than the deleted one (tested)."""
        if issued_at is None:
            issued_at = max(int(time.time()), self.last_issued + 1)
        self.last_issued = max(self.last_issued, issued_at)
        return mint_account(
            self.key.public,
            operator_signing_key,
            name=self.tenant,
            limits=self.limits,
            signing_keys=[self.signing_key.public],
            revocations=self.revocations,
            issued_at=issued_at,
        )

    def user(
        self,
        name: str,
        permissions: Permissions | None = None,
        *,
        expires: int | None = None,
        issued_at: int | None = None,
    ) -> UserCredentials:
        """A user of this account signed by its signing key (``expires``: unix seconds)."""
        return new_user(
            self.signing_key,
            account=self.key.public,
            name=name,
            permissions=permissions,
            expires=expires,
            issued_at=issued_at,
        )

    def revoke(self, user_public: str, at: int | None = None) -> None:
        """Revoke a user (every JWT of that key issued at or before ``at``). Takes effect when
        the account JWT is pushed again."""
        self.revocations[NKey.check_public(user_public, KeyKind.USER)] = (
            int(time.time()) if at is None else at
        )

    def revoke_all(self, at: int | None = None) -> None:
        """Revoke every user issued at or before ``at`` (deleting a tenant)."""
        self.revocations["*"] = int(time.time()) if at is None else at


async def push_account(nc: Client, account_jwt: str, *, timeout: float = 5.0) -> None:
    """Send an account JWT to the resolver over ``nc``, a system-account connection.

    :class:`ClaimsUpdateError` when the server refuses it or does not answer in ``timeout``.
    """
    await _claims_request(nc, CLAIMS_UPDATE, account_jwt, timeout)


async def delete_accounts(nc: Client, signer: NKey, accounts: list[str], *, timeout: float = 5.0) -> None:
    """Remove account JWTs from a ``full`` resolver (``allow_delete``) over a system-account
    connection: the accounts' users are disconnected and refused. ``signer``: the operator
    (signing) key."""
    await _claims_request(nc, CLAIMS_DELETE, mint_delete_request(signer, accounts), timeout)


async def _claims_request(nc: Client, subject: str, token: str, timeout: float) -> None:
    try:
        reply = await nc.request(subject, token.encode(), timeout=timeout)
    except NatsError as exc:
        raise ClaimsUpdateError(f"no answer to {subject}: {type(exc).__name__}: {exc}") from exc
    try:
        answer = json.loads(reply.data)
    except ValueError:
        raise ClaimsUpdateError(f"unreadable answer to {subject}: {reply.data[:200]!r}") from None
    error = answer.get("error") if isinstance(answer, dict) else None
    if error is not None or not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
        raise ClaimsUpdateError(f"the resolver refused {subject}: {error or answer}")
