"""``.creds`` files: a user JWT and the user's seed in the layout ``nsc`` writes and nats-py reads
(``nats.connect(user_credentials=path)``, or ``RawCredentials(text)`` without a file)."""

from __future__ import annotations

from dataclasses import dataclass, field

from natsflow_engine.accounts.jwt import Permissions, decode_jwt, mint_user
from natsflow_engine.accounts.keys import KeyKind, NKey

__all__ = ["UserCredentials", "new_user", "render_creds"]

_TEMPLATE = """-----BEGIN NATS USER JWT-----
{jwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
{seed}
------END USER NKEY SEED------

*************************************************************
"""


def render_creds(user_jwt: str, user_seed: str) -> str:
    """The text of a ``.creds`` file (the JWT must belong to the seed's public key)."""
    user = NKey.from_seed(user_seed, KeyKind.USER)
    if decode_jwt(user_jwt).get("sub") != user.public:
        raise ValueError("the user JWT was minted for another key than this seed")
    return _TEMPLATE.format(jwt=user_jwt.strip(), seed=user.seed)


@dataclass(frozen=True)
class UserCredentials:
    """A minted user: its public key (what revocations name), JWT and seed."""

    public: str
    jwt: str
    seed: str = field(repr=False)

    @property
    def creds(self) -> str:
        return render_creds(self.jwt, self.seed)


def new_user(
    signing_key: NKey,
    *,
    account: str,
    name: str,
    permissions: Permissions | None = None,
    expires: int | None = None,
    issued_at: int | None = None,
) -> UserCredentials:
    """A fresh user key and its JWT, signed by ``signing_key`` of ``account``."""
    user = NKey.generate(KeyKind.USER)
    token = mint_user(
        user.public,
        signing_key,
        account=account,
        name=name,
        permissions=permissions,
        expires=expires,
        issued_at=issued_at,
    )
    return UserCredentials(user.public, token, user.seed)
