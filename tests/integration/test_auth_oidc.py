"""External OIDC issuer (e.g. Cognito): tokens verified through its JWKS, served here from a
loopback HTTP server; the external subject is mapped to (and auto-provisions) a Chatflow user."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from chatflow.auth.tokens import TokenVerifier, external_user_id, load_public_keys
from chatflow.errors import Unauthorized
from tests.support.apigw import HttpApiClient
from tests.support.identity import http_client, promote, register
from tests.support.lambdas import load_handler_module, reset_handlers

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TEST"
CLIENT_ID = "client-abc123"
KID = "idp-key-1"


class JwksServer:
    """Serves ``/.well-known/jwks.json`` on 127.0.0.1 and counts fetches."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": KID, "alg": "RS256", "use": "sig"})
        body = json.dumps({"keys": [jwk]}).encode()
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                if self.path != "/.well-known/jwks.json":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def idp_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks(idp_key: rsa.RSAPrivateKey) -> Iterator[JwksServer]:
    server = JwksServer(idp_key)
    yield server
    server.close()


def _idp_token(key: Any, *, algorithm: str = "RS256", kid: str = KID, **over: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "iss": ISSUER,
        "client_id": CLIENT_ID,
        "token_use": "access",
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        "cognito:username": "Grace.Hopper",
    }
    claims.update(over)
    claims = {k: v for k, v in claims.items() if v is not None}  # None: leave the claim out
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


def _verifier(url: str, public_pem: str) -> TokenVerifier:
    return TokenVerifier(
        load_public_keys(public_pem),
        issuer="chatflow",
        audience="chatflow-clients",
        oidc_issuer=ISSUER,
        oidc_audience=CLIENT_ID,
        oidc_jwks_url=url,
    )


def test_external_token_maps_to_a_stable_user(
    jwks: JwksServer, idp_key: rsa.RSAPrivateKey, chatflow_env: dict[str, str]
) -> None:
    verifier = _verifier(jwks.url, chatflow_env["JWT_PUBLIC_KEYS"])
    sub = str(uuid.uuid4())
    identity = verifier.verify(_idp_token(idp_key, sub=sub))
    assert identity.user_id == external_user_id(ISSUER, sub)
    assert identity.external_subject == sub
    assert identity.handle == "grace.hopper"
    assert identity.role == "user"  # external tokens never grant admin
    again = verifier.verify(_idp_token(idp_key, sub=sub, role="admin"))
    assert again.user_id == identity.user_id
    assert again.role == "user"
    assert jwks.fetches == 1  # JWKS cached


def test_external_tokens_are_checked_strictly(
    jwks: JwksServer, idp_key: rsa.RSAPrivateKey, chatflow_env: dict[str, str]
) -> None:
    verifier = _verifier(jwks.url, chatflow_env["JWT_PUBLIC_KEYS"])
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    past = int(time.time()) - 3600
    bad = [
        _idp_token(idp_key, client_id="someone-else"),
        _idp_token(idp_key, iat=past, exp=past + 60),
        _idp_token(other_key),  # signed by a key the JWKS does not publish under that kid
        _idp_token(idp_key, kid="unknown-kid"),
        _idp_token(b"shared-secret-of-32-bytes-length!", algorithm="HS256"),
    ]
    for token in bad:
        with pytest.raises(Unauthorized):
            verifier.verify(token)


def _rfc9068_token(key: Any, **over: Any) -> str:
    """An RFC 9068 access token: header ``typ: at+jwt``, the client in ``aud``, no token_use."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "client_id": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    claims.update(over)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID, "typ": "at+jwt"})


def test_only_access_tokens_are_accepted_never_id_tokens(
    jwks: JwksServer, idp_key: rsa.RSAPrivateKey, chatflow_env: dict[str, str]
) -> None:
    verifier = _verifier(jwks.url, chatflow_env["JWT_PUBLIC_KEYS"])
    id_tokens = [
        # Cognito's ID token: token_use "id", the app client in ``aud``.
        _idp_token(idp_key, client_id=None, token_use="id", aud=CLIENT_ID),
        # token_use decides even when the header claims otherwise.
        jwt.encode(
            {**jwt.decode(_idp_token(idp_key, token_use="id"), options={"verify_signature": False})},
            idp_key,
            algorithm="RS256",
            headers={"kid": KID, "typ": "at+jwt"},
        ),
        # A plain OIDC ID token: no token_use, typ JWT (or none), aud = the client.
        _idp_token(idp_key, client_id=None, token_use=None, aud=CLIENT_ID, nonce="n-1"),
    ]
    for token in id_tokens:
        with pytest.raises(Unauthorized):
            verifier.verify(token)
    # Access tokens as either kind of issuer marks them.
    assert verifier.verify(_idp_token(idp_key)).role == "user"  # Cognito: token_use access
    assert verifier.verify(_rfc9068_token(idp_key)).role == "user"
    with_media_type = jwt.encode(
        jwt.decode(_rfc9068_token(idp_key), options={"verify_signature": False}),
        idp_key,
        algorithm="RS256",
        headers={"kid": KID, "typ": "application/at+jwt"},
    )
    assert verifier.verify(with_media_type).role == "user"


def test_without_a_configured_audience_no_external_token_is_accepted(
    jwks: JwksServer, idp_key: rsa.RSAPrivateKey, chatflow_env: dict[str, str]
) -> None:
    # Fail closed: a user pool serves many app clients; with no audience to check, a token minted
    # for any of them (another team's app) was accepted.
    verifier = TokenVerifier(
        load_public_keys(chatflow_env["JWT_PUBLIC_KEYS"]),
        issuer="chatflow",
        audience="chatflow-clients",
        oidc_issuer=ISSUER,
        oidc_audience=None,
        oidc_jwks_url=jwks.url,
    )
    for token in (_idp_token(idp_key, client_id="another-app"), _idp_token(idp_key)):
        with pytest.raises(Unauthorized):
            verifier.verify(token)


def test_jwks_unreachable_refuses(idp_key: rsa.RSAPrivateKey, chatflow_env: dict[str, str]) -> None:
    verifier = _verifier("http://127.0.0.1:9/jwks.json", chatflow_env["JWT_PUBLIC_KEYS"])
    with pytest.raises(Unauthorized):
        verifier.verify(_idp_token(idp_key))


@pytest.fixture
def oidc_api(
    jwks: JwksServer, monkeypatch: pytest.MonkeyPatch, chatflow_env: dict[str, str]
) -> Iterator[HttpApiClient]:
    from chatflow.auth.tokens import verifier_from_settings
    from chatflow.settings import get_settings
    from tests.support.settings import reset_settings_cache

    monkeypatch.setenv("OIDC_ISSUER", ISSUER)
    monkeypatch.setenv("OIDC_AUDIENCE", CLIENT_ID)
    monkeypatch.setenv("OIDC_JWKS_URL", jwks.url)
    reset_settings_cache()
    reset_handlers()
    client = http_client()
    authorizer = load_handler_module("authorizer")
    monkeypatch.setattr(authorizer, "verifier", verifier_from_settings(get_settings()))
    yield client
    monkeypatch.undo()
    reset_settings_cache()
    reset_handlers()


def test_first_request_provisions_the_user_and_bans_apply(
    oidc_api: HttpApiClient, idp_key: rsa.RSAPrivateKey, db: psycopg.Connection[dict[str, Any]]
) -> None:
    sub = str(uuid.uuid4())
    token = _idp_token(idp_key, sub=sub)
    me = oidc_api.get("/users/me", token=token)
    assert me.status == 200, me.body
    assert me.json["id"] == str(external_user_id(ISSUER, sub))
    assert me.json["handle"] == "grace.hopper" or me.json["handle"].startswith("grace.hopper-")
    row = db.execute(
        "SELECT external_issuer, external_subject, password_hash FROM users WHERE id = %s", (me.json["id"],)
    ).fetchone()
    assert row == {"external_issuer": ISSUER, "external_subject": sub, "password_hash": "!"}
    # Nobody can log in with a password as that user.
    login = oidc_api.post("/auth/login", json={"handle": me.json["handle"], "password": "!"})
    assert login.status == 401

    # A second external user with the same username gets a suffixed handle.
    other = oidc_api.get("/users/me", token=_idp_token(idp_key))
    assert other.status == 200
    assert other.json["handle"] != me.json["handle"]

    # Bans apply to external users like to any other.
    admin_handle = f"adm{uuid.uuid4().hex[:6]}"
    admin = register(oidc_api, admin_handle)
    promote(admin_handle)
    ban = oidc_api.post(f"/admin/users/{me.json['id']}/ban", token=admin["accessToken"])
    assert ban.status == 200, ban.body
    assert oidc_api.get("/users/me", token=_idp_token(idp_key, sub=sub)).status == 401
