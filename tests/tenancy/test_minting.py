"""NKeys and JWTs without a server: kinds, round trips, signatures, refusals of bad input."""

from __future__ import annotations

import base64
import json

import nkeys
import pytest
from natsflow_engine.accounts import (
    AccountLimits,
    InvalidKeyError,
    KeyKind,
    NKey,
    OperatorTrust,
    Permissions,
    TenantAccount,
    decode_jwt,
    mint_account,
    mint_user,
    render_creds,
)
from natsflow_engine.accounts.jwt import mint_delete_request, validate_subject


@pytest.mark.parametrize("kind", list(KeyKind))
def test_generated_keys_have_their_role_and_round_trip(kind: KeyKind) -> None:
    key = NKey.generate(kind)
    assert key.public.startswith(kind.letter) and len(key.public) == 56
    assert key.seed.startswith("S" + kind.letter)
    again = NKey.from_seed(key.seed, kind)
    assert again == key
    # the nkeys package (what nats-py signs with) derives the same public key and signature
    pair = nkeys.from_seed(bytearray(key.seed.encode()))
    assert pair.public_key.decode() == key.public
    assert pair.sign(b"nonce") == key.sign(b"nonce")
    assert key.seed not in repr(key)


def test_two_generated_keys_differ() -> None:
    assert NKey.generate(KeyKind.USER).public != NKey.generate(KeyKind.USER).public


def test_wrong_kinds_and_malformed_keys_are_refused() -> None:
    account = NKey.generate(KeyKind.ACCOUNT)
    with pytest.raises(InvalidKeyError, match="expected a user seed"):
        NKey.from_seed(account.seed, KeyKind.USER)
    with pytest.raises(InvalidKeyError, match="expected a user key"):
        NKey.check_public(account.public, KeyKind.USER)
    with pytest.raises(InvalidKeyError):
        NKey.from_seed("SUnotaseed")
    flipped = account.public[:10] + ("B" if account.public[10] != "B" else "C") + account.public[11:]
    with pytest.raises(InvalidKeyError, match="checksum"):
        NKey.check_public(flipped, KeyKind.ACCOUNT)
    with pytest.raises(InvalidKeyError):
        NKey.check_public("A" * 500, KeyKind.ACCOUNT)


def test_user_jwt_claims_and_signature() -> None:
    tenant = TenantAccount("shop")
    user = tenant.user(
        "worker", Permissions(publish=["nf.cmd.shop.>"], subscribe=["_i.w.>"]), expires=2_000_000_000
    )
    claims = decode_jwt(user.jwt)
    assert claims["sub"] == user.public
    assert claims["iss"] == tenant.signing_key.public
    assert claims["exp"] == 2_000_000_000
    nats_claims = claims["nats"]
    assert nats_claims["issuer_account"] == tenant.public
    assert nats_claims["pub"] == {"allow": ["nf.cmd.shop.>"]}
    assert nats_claims["sub"] == {"allow": ["_i.w.>"]}
    assert nats_claims["type"] == "user" and nats_claims["version"] == 2


def test_a_tampered_jwt_does_not_verify() -> None:
    trust = OperatorTrust.create()
    token = TenantAccount("a").jwt(trust.signing_key)
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["nats"]["limits"]["disk_storage"] = -1
    claims["name"] = "b"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidKeyError, match="does not verify"):
        decode_jwt(f"{head}.{forged}.{sig}")
    for junk in ("", "a.b", "x.y.z", "...."):
        with pytest.raises(InvalidKeyError):
            decode_jwt(junk)


def test_account_jwt_carries_limits_signing_keys_and_revocations() -> None:
    trust = OperatorTrust.create()
    tenant = TenantAccount(
        "a", AccountLimits(memory=1024, disk=4096, streams=9, consumers=20, connections=5, payload=512)
    )
    revoked = NKey.generate(KeyKind.USER).public
    tenant.revoke(revoked, at=1234)
    claims = decode_jwt(tenant.jwt(trust.signing_key))
    assert claims["iss"] == trust.signing_key.public and claims["sub"] == tenant.public
    limits = claims["nats"]["limits"]
    assert (limits["mem_storage"], limits["disk_storage"], limits["streams"], limits["consumer"]) == (
        1024,
        4096,
        9,
        20,
    )
    assert (limits["conn"], limits["payload"]) == (5, 512)
    assert claims["nats"]["signing_keys"] == [tenant.signing_key.public]
    assert claims["nats"]["revocations"] == {revoked: 1234}


def test_signers_of_the_wrong_kind_and_bad_input_are_refused() -> None:
    account = NKey.generate(KeyKind.ACCOUNT)
    user = NKey.generate(KeyKind.USER)
    with pytest.raises(InvalidKeyError, match="operator"):
        mint_account(account.public, account, name="a")
    with pytest.raises(InvalidKeyError, match="account"):
        mint_user(user.public, NKey.generate(KeyKind.OPERATOR), account=account.public, name="u")
    with pytest.raises(InvalidKeyError):
        mint_user(account.public, account, account=account.public, name="u")  # subject is not a user key
    with pytest.raises(ValueError, match="limit"):
        AccountLimits(streams=-2).claims()
    with pytest.raises(ValueError, match="name"):
        mint_user(user.public, account, account=account.public, name="x" * 500)


@pytest.mark.parametrize("subject", ["", "a..b", "a b", "a.>.b", "a*.b", "a.b>", ".a", "x" * 300])
def test_bad_permission_subjects_are_refused(subject: str) -> None:
    with pytest.raises(ValueError):
        validate_subject(subject)


def test_an_empty_allow_list_allows_nothing() -> None:
    assert Permissions(publish=[], subscribe=None).claims() == {
        "pub": {"allow": [], "deny": [">"]},
        "sub": {},
    }


def test_creds_file_refuses_a_seed_of_another_user() -> None:
    tenant = TenantAccount("a")
    one, two = tenant.user("one"), tenant.user("two")
    text = render_creds(one.jwt, one.seed)
    assert one.jwt in text and one.seed in text
    with pytest.raises(ValueError, match="another key"):
        render_creds(one.jwt, two.seed)


def test_a_deletion_request_is_signed_by_an_operator_key_and_names_accounts() -> None:
    trust = OperatorTrust.create()
    account = NKey.generate(KeyKind.ACCOUNT)
    claims = decode_jwt(mint_delete_request(trust.signing_key, [account.public]))
    assert claims["nats"]["accounts"] == [account.public] and claims["iss"] == trust.signing_key.public
    with pytest.raises(InvalidKeyError):
        mint_delete_request(account, [account.public])
    with pytest.raises(InvalidKeyError):
        mint_delete_request(trust.signing_key, [NKey.generate(KeyKind.USER).public])
    with pytest.raises(ValueError):
        mint_delete_request(trust.signing_key, [])


def test_each_account_jwt_is_issued_later_than_the_last() -> None:
    trust = OperatorTrust.create()
    tenant = TenantAccount("a")
    times = [decode_jwt(tenant.jwt(trust.signing_key))["iat"] for _ in range(3)]
    assert times[0] < times[1] < times[2]
