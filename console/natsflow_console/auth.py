"""Who is calling: users, their tenant and role, from bearer tokens or a trusted proxy header.

A user is configured once (a YAML or JSON document in a file or in ``NATSFLOW_CONSOLE_USERS``)::

    users:
      - name: alice
        token: "a long random secret"      # or token_sha256: <hex digest of the token>
        tenant: shop
        role: operator                      # operator (default) or viewer (read-only)
        groups: [sales]                     # candidate groups for the task inbox

A request is authenticated by ``Authorization: Bearer <token>``, by the session cookie the
login page sets from a token, or, when the console runs behind an authenticating reverse proxy,
by the user name the proxy puts in a configured header (then only that proxy may reach the
console). The tenant always comes from the user, never from the request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from natsflow_engine import layout
from natsflow_engine.errors import AuthError

__all__ = ["ROLES", "AuthError", "User", "Users", "load_users"]

Role = Literal["operator", "viewer"]
ROLES: tuple[Role, ...] = ("operator", "viewer")
MAX_TOKEN = 512
_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")


@dataclass(frozen=True)
class User:
    name: str
    tenant: str
    role: Role = "operator"
    groups: tuple[str, ...] = ()
    token_sha256: str | None = field(default=None, repr=False)

    @property
    def can_write(self) -> bool:
        return self.role == "operator"

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "tenant": self.tenant, "role": self.role, "groups": list(self.groups)}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Users:
    """The configured users, looked up by token or by name (proxy header)."""

    def __init__(self, users: list[User]) -> None:
        self._by_name = {u.name: u for u in users}
        if len(self._by_name) != len(users):
            raise AuthError("users: two entries have the same name")
        self._by_digest = {u.token_sha256: u for u in users if u.token_sha256}

    def __len__(self) -> int:
        return len(self._by_name)

    def by_token(self, token: str) -> User | None:
        if not token or len(token) > MAX_TOKEN:
            return None
        digest = _digest(token)
        for known, user in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return user
        return None

    def by_name(self, name: str) -> User | None:
        if not _NAME.match(name):
            return None
        return self._by_name.get(name)


def _user(index: int, entry: Any) -> User:
    where = f"users[{index}]"
    if not isinstance(entry, dict):
        raise AuthError(f"{where}: expected a mapping with name, tenant and token")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise AuthError(f"{where}.name: letters, digits and ._@+- only, 1 to 128 characters")
    tenant = entry.get("tenant")
    try:
        layout.validate_tenant(tenant if isinstance(tenant, str) else "")
    except ValueError as exc:
        raise AuthError(f"{where}.tenant: {exc}") from None
    assert isinstance(tenant, str)
    role = entry.get("role", "operator")
    if role not in ROLES:
        raise AuthError(f"{where}.role: one of {', '.join(ROLES)}, not {role!r}")
    groups = entry.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) and 0 < len(g) <= 128 for g in groups):
        raise AuthError(f"{where}.groups: a list of group names")
    token, digest = entry.get("token"), entry.get("token_sha256")
    if token is not None:
        if not isinstance(token, str) or not 16 <= len(token) <= MAX_TOKEN:
            raise AuthError(f"{where}.token: a string of 16 to {MAX_TOKEN} characters")
        digest = _digest(token)
    elif digest is not None and not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        raise AuthError(f"{where}.token_sha256: 64 lower-case hex digits")
    return User(name=name, tenant=tenant, role=role, groups=tuple(groups), token_sha256=digest)


def parse_users(text: str) -> Users:
    try:
        document = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise AuthError(f"users: not YAML or JSON ({exc})") from None
    entries = document.get("users") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise AuthError("users: expected a document with a 'users' list")
    return Users([_user(i, e) for i, e in enumerate(entries)])


def load_users(path: Path | None = None, *, env: str = "NATSFLOW_CONSOLE_USERS") -> Users:
    """Users from ``path`` and/or the environment variable ``env`` (both may be given)."""
    found: list[User] = []
    if path is not None:
        found += list(parse_users(path.read_text())._by_name.values())
    text = os.environ.get(env)
    if text:
        found += list(parse_users(text)._by_name.values())
    return Users(found)


def dev_users(tenant: str, token: str) -> Users:
    """The one operator of ``natsflow dev``: the tenant it runs, a token made at start."""
    return parse_users(json.dumps({"users": [{"name": "dev", "tenant": tenant, "token": token}]}))
