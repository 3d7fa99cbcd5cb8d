"""Operator, account and user JWTs in the NATS v2 format, minted offline.

A NATS JWT is ``base64url(header) . base64url(claims) . base64url(ed25519 signature)`` with the
header ``{"typ":"JWT","alg":"ed25519-nkey"}``; the issuer (``iss``) is the public key whose seed
signed it. Chain of trust:

- the operator JWT is self-signed by the operator key and lists the operator *signing keys*;
  the server trusts it from its configuration;
- an account JWT is signed by an operator signing key (the operator's root key stays offline);
  it carries the account's limits (JetStream memory and disk, streams, consumers, connections,
  payload), its own signing keys and its revocations;
- a user JWT is signed by an account signing key (``issuer_account`` names the account) and
  carries the user's permissions and expiry.

Every claim set is validated before it is signed: keys of the right kind, subjects without
blanks or misplaced wildcards, bounded names. What nats-server 2.15 accepts is tested in
``tests/tenancy``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from natsflow_engine.accounts.keys import InvalidKeyError, KeyKind, NKey, verify_signature

__all__ = [
    "AccountLimits",
    "Permissions",
    "decode_jwt",
    "mint_account",
    "mint_delete_request",
    "mint_operator",
    "mint_user",
    "validate_subject",
]

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
UNLIMITED = -1
MAX_SUBJECT = 255
MAX_NAME = 128


@dataclass(frozen=True)
class AccountLimits:
    """Limits of one account; ``-1`` is unlimited. JetStream is enabled when ``memory`` or
    ``disk`` is not 0."""

    memory: int = UNLIMITED
    """Bytes of JetStream memory storage."""
    disk: int = UNLIMITED
    """Bytes of JetStream file storage."""
    streams: int = UNLIMITED
    """JetStream streams (KV buckets are streams)."""
    consumers: int = UNLIMITED
    """JetStream consumers."""
    connections: int = UNLIMITED
    """Client connections at once."""
    payload: int = UNLIMITED
    """Bytes of one message."""
    subscriptions: int = UNLIMITED
    """Subscriptions at once."""
    leaf_nodes: int = UNLIMITED
    """Leaf node connections at once."""

    def claims(self) -> dict[str, Any]:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < UNLIMITED:
                raise ValueError(f"account limit {name} must be an integer >= -1, got {value!r}")
        return {
            "subs": self.subscriptions,
            "data": UNLIMITED,
            "payload": self.payload,
            "imports": UNLIMITED,
            "exports": UNLIMITED,
            "wildcards": True,
            "conn": self.connections,
            "leaf": self.leaf_nodes,
            "mem_storage": self.memory,
            "disk_storage": self.disk,
            "streams": self.streams,
            "consumer": self.consumers,
        }


def validate_subject(subject: str) -> str:
    """A subject or subject pattern a permission may name: bounded, no blanks, no empty token,
    ``>`` only as the last token, wildcards only as whole tokens."""
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT:
        raise ValueError(f"a permission subject has 1 to {MAX_SUBJECT} characters: {subject!r:.80}")
    tokens = subject.split(".")
    for i, tok in enumerate(tokens):
        bad = (
            not tok
            or any(c.isspace() for c in tok)
            or ("*" in tok and tok != "*")
            or (">" in tok and (tok != ">" or i != len(tokens) - 1))
        )
        if bad:
            raise ValueError(f"invalid permission subject {subject!r:.80}")
    return subject


@dataclass(frozen=True)
class Permissions:
    """What a user may publish and subscribe to. ``None`` leaves a direction unrestricted; an
    empty allow list allows nothing."""

    publish: Sequence[str] | None = None
    subscribe: Sequence[str] | None = None
    deny_publish: Sequence[str] = ()
    deny_subscribe: Sequence[str] = ()

    @staticmethod
    def _side(allow: Sequence[str] | None, deny: Sequence[str]) -> dict[str, list[str]]:
        side: dict[str, list[str]] = {}
        if allow is not None:
            side["allow"] = [validate_subject(s) for s in allow]
            if not allow:
                side["deny"] = [">"]
        if deny:
            side.setdefault("deny", []).extend(validate_subject(s) for s in deny)
        return side

    def claims(self) -> dict[str, Any]:
        return {
            "pub": self._side(self.publish, self.deny_publish),
            "sub": self._side(self.subscribe, self.deny_subscribe),
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _name(name: str) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or not name.isprintable():
        raise ValueError(f"a JWT name has 1 to {MAX_NAME} printable characters: {name!r:.80}")
    return name


def _encode(
    subject: str, issuer: NKey, name: str, nats: dict[str, Any], *, issued_at: int | None, expires: int | None
) -> str:
    claims: dict[str, Any] = {
        "jti": "",
        "iat": int(time.time()) if issued_at is None else issued_at,
        "iss": issuer.public,
        "name": _name(name),
        "sub": subject,
    }
    if expires is not None:
        if expires <= 0:
            raise ValueError("expiry is a unix time in seconds")
        claims["exp"] = expires
    claims["nats"] = {**nats, "version": 2}
    # the id is the hash of the claims without it (like the Go library), so it names the content
    digest = hashlib.new("sha512_256", _compact(claims)).digest()
    claims["jti"] = base64.b32encode(digest).rstrip(b"=").decode()
    signed = f"{_b64(_compact(_HEADER))}.{_b64(_compact(claims))}"
    return f"{signed}.{_b64(issuer.sign(signed.encode()))}"


def mint_operator(
    operator: NKey,
    *,
    name: str,
    signing_keys: Sequence[str] = (),
    system_account: str | None = None,
    issued_at: int | None = None,
) -> str:
    """The operator JWT, self-signed by the operator key."""
    if operator.kind is not KeyKind.OPERATOR:
        raise InvalidKeyError("an operator JWT is signed by an operator key")
    nats: dict[str, Any] = {
        "signing_keys": [NKey.check_public(k, KeyKind.OPERATOR) for k in signing_keys],
        "type": "operator",
    }
    if system_account is not None:
        nats["system_account"] = NKey.check_public(system_account, KeyKind.ACCOUNT)
    return _encode(operator.public, operator, name, nats, issued_at=issued_at, expires=None)


def mint_account(
    account: str,
    issuer: NKey,
    *,
    name: str,
    limits: AccountLimits | None = None,
    signing_keys: Sequence[str] = (),
    revocations: Mapping[str, int] | None = None,
    issued_at: int | None = None,
    expires: int | None = None,
) -> str:
    """An account JWT signed by the operator key or one of its signing keys.

    ``revocations`` maps user public keys (or ``"*"`` for every user) to a unix time: users whose
    JWT was issued at or before it are refused and disconnected.
    """
    if issuer.kind is not KeyKind.OPERATOR:
        raise InvalidKeyError("an account JWT is signed by an operator (signing) key")
    revoked: dict[str, int] = {}
    for user, when in (revocations or {}).items():
        revoked[user if user == "*" else NKey.check_public(user, KeyKind.USER)] = int(when)
    nats: dict[str, Any] = {
        "limits": (limits or AccountLimits()).claims(),
        "signing_keys": [NKey.check_public(k, KeyKind.ACCOUNT) for k in signing_keys],
        "default_permissions": {"pub": {}, "sub": {}},
        "type": "account",
    }
    if revoked:
        nats["revocations"] = revoked
    subject = NKey.check_public(account, KeyKind.ACCOUNT)
    return _encode(subject, issuer, name, nats, issued_at=issued_at, expires=expires)


def mint_user(
    user: str,
    issuer: NKey,
    *,
    account: str,
    name: str,
    permissions: Permissions | None = None,
    issued_at: int | None = None,
    expires: int | None = None,
) -> str:
    """A user JWT of ``account``, signed by the account key or one of its signing keys."""
    if issuer.kind is not KeyKind.ACCOUNT:
        raise InvalidKeyError("a user JWT is signed by an account (signing) key")
    NKey.check_public(account, KeyKind.ACCOUNT)
    nats: dict[str, Any] = {
        **(permissions or Permissions()).claims(),
        "subs": UNLIMITED,
        "data": UNLIMITED,
        "payload": UNLIMITED,
        "type": "user",
    }
    if issuer.public != account:
        nats["issuer_account"] = account
    subject = NKey.check_public(user, KeyKind.USER)
    return _encode(subject, issuer, name, nats, issued_at=issued_at, expires=expires)


def mint_delete_request(issuer: NKey, accounts: Sequence[str], *, issued_at: int | None = None) -> str:
    """A request to remove account JWTs from a ``full`` resolver (``$SYS.REQ.CLAIMS.DELETE``,
    needs ``allow_delete``), signed by the operator key or one of its signing keys."""
    if issuer.kind is not KeyKind.OPERATOR:
        raise InvalidKeyError("an account deletion is signed by an operator (signing) key")
    if not accounts:
        raise ValueError("name at least one account to delete")
    nats = {"accounts": [NKey.check_public(a, KeyKind.ACCOUNT) for a in accounts], "type": "generic"}
    return _encode(issuer.public, issuer, "delete accounts", nats, issued_at=issued_at, expires=None)


def decode_jwt(token: str) -> dict[str, Any]:
    """The claims of a JWT whose signature verifies with its issuer; :class:`InvalidKeyError`
    for anything else. (Whether the issuer is trusted is the caller's question.)"""
    parts = token.strip().split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise InvalidKeyError("not a JWT (three dot-separated parts)")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, binascii.Error):
        raise InvalidKeyError("not a JWT (base64url JSON parts)") from None
    if not isinstance(header, dict) or header.get("alg") != _HEADER["alg"] or not isinstance(claims, dict):
        raise InvalidKeyError("not a NATS JWT (alg ed25519-nkey)")
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        raise InvalidKeyError("JWT without an issuer")
    verify_signature(issuer, f"{parts[0]}.{parts[1]}".encode(), signature)
    return claims
