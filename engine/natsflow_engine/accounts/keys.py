"""NKeys: ed25519 key pairs in the NATS encoding (``O…`` operator, ``A…`` account, ``U…`` user).

A seed is 32 random bytes from the operating system (PyNaCl), encoded by the ``nkeys`` package
(the one nats-py uses to read ``.creds`` files): ``S`` + role letter + base32 + CRC16. Public
keys are decoded and checked here, so a JWT signature can be verified without a seed.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.signing
import nkeys

from natsflow_engine.errors import InvalidKeyError

__all__ = ["InvalidKeyError", "KeyKind", "NKey", "verify_signature"]


class KeyKind(enum.Enum):
    """The role of a key; its value is the nkeys prefix byte."""

    OPERATOR = nkeys.PREFIX_BYTE_OPERATOR
    ACCOUNT = nkeys.PREFIX_BYTE_ACCOUNT
    USER = nkeys.PREFIX_BYTE_USER

    @property
    def letter(self) -> str:
        return {KeyKind.OPERATOR: "O", KeyKind.ACCOUNT: "A", KeyKind.USER: "U"}[self]


def _crc16(data: bytes) -> bytes:
    return bytes(nkeys.crc16_checksum(data))


def _decode_public(public: str, kind: KeyKind | None = None) -> tuple[KeyKind, bytes]:
    if not isinstance(public, str) or len(public) != 56:
        raise InvalidKeyError(f"not a public nkey (56 characters): {public!r:.80}")
    try:
        raw = base64.b32decode(public)
    except (binascii.Error, ValueError):
        raise InvalidKeyError(f"not a public nkey (base32): {public!r:.80}") from None
    body, checksum = raw[:-2], raw[-2:]
    if _crc16(body) != checksum:
        raise InvalidKeyError(f"public nkey checksum does not match: {public!r:.80}")
    try:
        found = KeyKind(body[0])
    except ValueError:
        raise InvalidKeyError(f"public nkey of an unknown role: {public!r:.80}") from None
    if kind is not None and found is not kind:
        raise InvalidKeyError(f"expected a {kind.name.lower()} key, got a {found.name.lower()} key")
    return found, body[1:]


def verify_signature(public: str, data: bytes, signature: bytes) -> None:
    """Raise :class:`InvalidKeyError` unless ``signature`` is ``public``'s signature of ``data``."""
    _, raw = _decode_public(public)
    try:
        nacl.signing.VerifyKey(raw).verify(data, signature)
    except nacl.exceptions.BadSignatureError:
        raise InvalidKeyError(f"signature does not verify with {public}") from None


@dataclass(frozen=True)
class NKey:
    """A key pair: its seed (secret, ``S…``) and public key. Create with :meth:`generate` or
    :meth:`from_seed`; the seed never appears in ``repr``."""

    kind: KeyKind
    seed: str = field(repr=False)
    public: str

    @classmethod
    def generate(cls, kind: KeyKind) -> NKey:
        return cls.from_seed(bytes(nkeys.encode_seed(os.urandom(32), kind.value)).decode())

    @classmethod
    def from_seed(cls, seed: str, kind: KeyKind | None = None) -> NKey:
        try:
            prefix, _ = nkeys.decode_seed(seed.strip().encode())
            pair = nkeys.from_seed(bytearray(seed.strip().encode()))
            public = bytes(pair.public_key).decode()
        except (nkeys.NkeysError, ValueError, binascii.Error):
            raise InvalidKeyError("not an nkey seed") from None
        found, _ = _decode_public(public)
        if found.value != prefix or (kind is not None and found is not kind):
            want = kind.name.lower() if kind else found.name.lower()
            raise InvalidKeyError(f"expected a {want} seed, got a seed for a {found.name.lower()} key")
        return cls(found, seed.strip(), public)

    @staticmethod
    def check_public(public: str, kind: KeyKind) -> str:
        """``public`` if it is a well-formed public key of ``kind``, else :class:`InvalidKeyError`."""
        _decode_public(public, kind)
        return public

    def sign(self, data: bytes) -> bytes:
        _, raw = nkeys.decode_seed(self.seed.encode())
        return bytes(nacl.signing.SigningKey(bytes(raw)).sign(data).signature)
