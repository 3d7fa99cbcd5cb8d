"""Tenant accounts: NKeys, operator/account/user JWTs, ``.creds`` files, claim updates.

Modules: :mod:`.keys` (key pairs), :mod:`.jwt` (claims and minting), :mod:`.creds` (users and
``.creds`` text), :mod:`.trust` (operator, tenant accounts, pushing and deleting account JWTs),
:mod:`.permissions` (the users natsflow mints), :mod:`.connections` (one connection per tenant
account).
"""

from __future__ import annotations

from natsflow_engine.accounts.creds import UserCredentials, new_user, render_creds
from natsflow_engine.accounts.jwt import (
    AccountLimits,
    Permissions,
    decode_jwt,
    mint_account,
    mint_operator,
    mint_user,
)
from natsflow_engine.accounts.keys import InvalidKeyError, KeyKind, NKey
from natsflow_engine.accounts.trust import (
    ClaimsUpdateError,
    OperatorTrust,
    TenantAccount,
    delete_accounts,
    push_account,
)

__all__ = [
    "AccountLimits",
    "ClaimsUpdateError",
    "InvalidKeyError",
    "KeyKind",
    "NKey",
    "OperatorTrust",
    "Permissions",
    "TenantAccount",
    "UserCredentials",
    "decode_jwt",
    "delete_accounts",
    "mint_account",
    "mint_operator",
    "mint_user",
    "new_user",
    "push_account",
    "render_creds",
]
