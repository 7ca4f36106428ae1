"""Access tokens: ES256 signing, pinned verification, key rotation by kid, JWKS, token parsing."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chatflow.auth.keys import generate_es256_pem_pair
from chatflow.auth.tokens import (
    TokenSigner,
    TokenVerifier,
    bearer_token,
    load_public_keys,
    public_jwk,
    token_from_subprotocols,
)
from chatflow.errors import Unauthorized

ISS, AUD = "chatflow", "chatflow-clients"


def _keypair() -> tuple[str, str, ec.EllipticCurvePrivateKey]:
    private, public = generate_es256_pem_pair()
    key = serialization.load_pem_private_key(private.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return private, public, key


@pytest.fixture(scope="module")
def keys() -> tuple[str, str, ec.EllipticCurvePrivateKey]:
    return _keypair()


@pytest.fixture
def signer(keys: tuple[str, str, Any]) -> TokenSigner:
    return TokenSigner(keys[0], issuer=ISS, audience=AUD, ttl_s=900)


@pytest.fixture
def verifier(keys: tuple[str, str, Any]) -> TokenVerifier:
    return TokenVerifier(load_public_keys(keys[1]), issuer=ISS, audience=AUD, leeway_s=0)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "iss": ISS,
        "aud": AUD,
        "iat": now,
        "exp": now + 600,
        "jti": "j1",
        "handle": "ada",
        "role": "user",
    }
    claims.update(over)
    return claims


def test_issued_token_verifies_with_public_key_only(signer: TokenSigner, verifier: TokenVerifier) -> None:
    user_id = uuid.uuid4()
    issued = signer.issue(user_id=user_id, handle="ada", role="admin")
    header = jwt.get_unverified_header(issued.token)
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": signer.kid}
    identity = verifier.verify(issued.token)
    assert identity.user_id == user_id
    assert identity.handle == "ada"
    assert identity.role == "admin"
    assert identity.token_id == issued.claims["jti"]
    assert set(issued.claims) == {"sub", "iss", "aud", "exp", "iat", "jti", "handle", "role"}
    assert issued.claims["exp"] == int(issued.claims["iat"]) + 900


def test_iat_is_sub_second_and_lifted_to_not_before(signer: TokenSigner) -> None:
    later = time.time() + 1.2345
    issued = signer.issue(user_id=uuid.uuid4(), handle="ada", role="user", not_before=later)
    assert issued.claims["iat"] == later  # not rounded: revocations compare to the microsecond
    assert isinstance(issued.claims["exp"], int)
    before = time.time()
    plain = signer.issue(user_id=uuid.uuid4(), handle="ada", role="user")
    assert before <= plain.claims["iat"] <= time.time()


def test_expired_token_refused(
    keys: tuple[str, str, Any], verifier: TokenVerifier, signer: TokenSigner
) -> None:
    past = int(time.time()) - 3600
    token = jwt.encode(
        _claims(iat=past, exp=past + 60),
        keys[2],
        algorithm="ES256",
        headers={"kid": signer.kid, "typ": "at+jwt"},
    )
    with pytest.raises(Unauthorized):
        verifier.verify(token)


def test_forged_signature_refused(verifier: TokenVerifier, signer: TokenSigner) -> None:
    _, _, other = _keypair()
    token = jwt.encode(_claims(), other, algorithm="ES256", headers={"kid": signer.kid, "typ": "at+jwt"})
    with pytest.raises(Unauthorized):
        verifier.verify(token)


def test_tampered_payload_refused(signer: TokenSigner, verifier: TokenVerifier) -> None:
    token = signer.issue(user_id=uuid.uuid4(), handle="ada", role="user").token
    header, _, signature = token.split(".")
    forged = f"{header}.{_b64(_claims(role='admin'))}.{signature}"
    with pytest.raises(Unauthorized):
        verifier.verify(forged)


def test_alg_none_refused(verifier: TokenVerifier, signer: TokenSigner) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': signer.kid})}.{_b64(_claims())}."
    with pytest.raises(Unauthorized):
        verifier.verify(token)


def test_hs256_signed_with_the_public_key_refused(
    keys: tuple[str, str, Any], verifier: TokenVerifier, signer: TokenSigner
) -> None:
    # The classic key-confusion attack: HMAC keyed with the (public) verification key.
    import hashlib
    import hmac

    header = _b64({"alg": "HS256", "typ": "at+jwt", "kid": signer.kid})
    payload = _b64(_claims(role="admin"))
    mac = hmac.new(keys[1].encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    with pytest.raises(Unauthorized):
        verifier.verify(token)


@pytest.mark.parametrize(
    "override",
    [{"aud": "someone-else"}, {"iss": "evil"}, {"role": "root"}, {"sub": "not-a-uuid"}],
    ids=["wrong-aud", "wrong-iss", "bad-role", "bad-sub"],
)
def test_wrong_claims_refused(
    keys: tuple[str, str, Any], verifier: TokenVerifier, signer: TokenSigner, override: dict[str, Any]
) -> None:
    token = jwt.encode(
        _claims(**override), keys[2], algorithm="ES256", headers={"kid": signer.kid, "typ": "at+jwt"}
    )
    with pytest.raises(Unauthorized):
        verifier.verify(token)


@pytest.mark.parametrize("missing", ["exp", "iat", "jti", "sub", "aud", "iss"])
def test_required_claims(
    keys: tuple[str, str, Any], verifier: TokenVerifier, signer: TokenSigner, missing: str
) -> None:
    claims = _claims()
    del claims[missing]
    token = jwt.encode(claims, keys[2], algorithm="ES256", headers={"kid": signer.kid, "typ": "at+jwt"})
    with pytest.raises(Unauthorized):
        verifier.verify(token)


def test_unknown_kid_and_missing_typ_refused(keys: tuple[str, str, Any], verifier: TokenVerifier) -> None:
    for headers in ({"kid": "nope", "typ": "at+jwt"}, {"kid": public_jwk(keys[2].public_key())["kid"]}):
        token = jwt.encode(_claims(), keys[2], algorithm="ES256", headers=headers)
        with pytest.raises(Unauthorized):
            verifier.verify(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 5000])
def test_garbage_refused(verifier: TokenVerifier, garbage: str) -> None:
    with pytest.raises(Unauthorized):
        verifier.verify(garbage)


def test_key_rotation_old_and_new_keys_verify_by_kid(keys: tuple[str, str, Any]) -> None:
    new_private, new_public, _ = _keypair()
    old_signer = TokenSigner(keys[0], issuer=ISS, audience=AUD, ttl_s=60)
    new_signer = TokenSigner(new_private, issuer=ISS, audience=AUD, ttl_s=60)
    assert old_signer.kid != new_signer.kid
    both = TokenVerifier(load_public_keys(f"{new_public}\n{keys[1]}"), issuer=ISS, audience=AUD)
    only_new = TokenVerifier(load_public_keys(new_public), issuer=ISS, audience=AUD)
    old_token = old_signer.issue(user_id=uuid.uuid4(), handle="ada", role="user").token
    new_token = new_signer.issue(user_id=uuid.uuid4(), handle="bob", role="user").token
    assert both.verify(old_token).handle == "ada"
    assert both.verify(new_token).handle == "bob"
    assert only_new.verify(new_token).handle == "bob"
    with pytest.raises(Unauthorized):
        only_new.verify(old_token)  # retired key


def test_public_keys_accept_escaped_newlines(keys: tuple[str, str, Any]) -> None:
    escaped = keys[1].replace("\n", "\\n")
    assert list(load_public_keys(escaped)) == list(load_public_keys(keys[1]))


def test_public_jwk_is_rfc7638_thumbprinted(keys: tuple[str, str, Any]) -> None:
    jwk = public_jwk(keys[2].public_key())
    assert jwk["kty"] == "EC"
    assert jwk["crv"] == "P-256"
    assert jwk["alg"] == "ES256"
    assert jwk["use"] == "sig"
    # pyjwt can load it back and verify our tokens with it.
    signer = TokenSigner(keys[0], issuer=ISS, audience=AUD, ttl_s=60)
    token = signer.issue(user_id=uuid.uuid4(), handle="ada", role="user").token
    loaded = jwt.PyJWK(jwk)
    assert jwt.decode(token, loaded.key, algorithms=["ES256"], audience=AUD)["handle"] == "ada"
    assert jwk["kid"] == signer.kid


def test_rsa_public_key_rejected_for_es256() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ValueError):
        load_public_keys(pem)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer   abc", "abc"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer a b", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_parsing(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("chatflow.v1, bearer.abc.def.ghi", "abc.def.ghi"),
        ("bearer.tok", "tok"),
        ("chatflow.v1", None),
        ("bearer.", None),
        (None, None),
    ],
)
def test_token_from_subprotocols(header: str | None, expected: str | None) -> None:
    assert token_from_subprotocols(header) == expected


def test_subprotocol_response_echoes_only_the_chatflow_protocol() -> None:
    from chatflow.ws.protocol import subprotocol_response_headers

    assert subprotocol_response_headers("chatflow.v1, bearer.abc") == {
        "Sec-WebSocket-Protocol": "chatflow.v1"
    }
    assert subprotocol_response_headers("bearer.abc") == {}
    assert subprotocol_response_headers(None) == {}
