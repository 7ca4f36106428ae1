"""Access tokens: ES256 JWTs signed by the HTTP API, verified with public keys only.

- Header: ``alg: ES256``, ``typ: at+jwt`` (RFC 9068), ``kid`` = the RFC 7638 thumbprint of the
  signing key's public half, so signer and verifiers agree on key ids without configuration and
  several public keys can be published at once (rotation): ``settings.jwt_public_keys`` holds
  every key still trusted; ``GET /.well-known/jwks.json`` publishes them.
- Claims: sub (user id), iss, aud, exp, iat, jti, handle, role.
- Verification pins the algorithm (``algorithms=["ES256"]``): ``alg: none``, HS256 signed with
  the public key as HMAC secret, unknown kids, wrong iss/aud, expired or immature tokens are
  refused with :class:`chatflow.errors.Unauthorized` (message generic on purpose).
- Optional external OIDC issuer (e.g. Cognito): tokens whose ``iss`` equals
  ``settings.oidc_issuer`` are verified through its JWKS (``jwt.PyJWKClient``, cached), with the
  algorithm pinned to the JWK's (RS256/ES256 only), and ACCESS tokens only (``token_use: access``
  as Cognito marks them, or ``typ: at+jwt`` per RFC 9068; never ID tokens). The external subject
  maps to a deterministic
  user id (uuid5 of issuer + sub); the user row is provisioned by ``ensure_active``.

Import-light on purpose (jwt + cryptography): the authorizer's cold start depends on it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chatflow.domain.identity import Identity, Role
from chatflow.domain.validation import NOT_HANDLE_CHARS
from chatflow.errors import Unauthorized
from chatflow.settings import Settings

if TYPE_CHECKING:  # the authorizer verifies only: its cold start skips the user models
    from chatflow.domain.user_models import IssuedToken

ALGORITHM = "ES256"
TOKEN_TYPE = "at+jwt"  # noqa: S105
#: Algorithms accepted from an external OIDC issuer's JWKS (never symmetric, never none).
OIDC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"})
_ROLES: frozenset[str] = frozenset({"user", "admin"})
_PEM_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


def _b64url_uint(value: int, size: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(size, "big")).decode().rstrip("=")


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public JWK of a P-256 key, with ``kid`` = its RFC 7638 thumbprint."""
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("ES256 needs a P-256 key")
    numbers = key.public_numbers()
    jwk = {"crv": "P-256", "kty": "EC", "x": _b64url_uint(numbers.x, 32), "y": _b64url_uint(numbers.y, 32)}
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).decode().rstrip("=")
    return {**jwk, "kid": kid, "use": "sig", "alg": ALGORITHM}


def load_public_keys(pem_bundle: str) -> dict[str, ec.EllipticCurvePublicKey]:
    """Parse one or several PEM public keys (any separator) into ``{kid: key}``."""
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for block in _PEM_BLOCK.findall(pem_bundle.replace("\\n", "\n")):
        key = serialization.load_pem_public_key(block.encode())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("JWT public keys must be EC P-256 keys (ES256)")
        keys[public_jwk(key)["kid"]] = key
    return keys


class TokenSigner:
    """Issues access tokens (only the HTTP API holds the private key)."""

    def __init__(self, private_key_pem: str, *, issuer: str, audience: str, ttl_s: int) -> None:
        key = serialization.load_pem_private_key(private_key_pem.replace("\\n", "\n").encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("JWT private key must be an EC P-256 key (ES256)")
        self._key = key
        self.kid = public_jwk(key.public_key())["kid"]
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s

    def issue(self, *, user_id: uuid.UUID, handle: str, role: Role, not_before: float = 0.0) -> IssuedToken:
        """Sign an access token. ``iat`` is sub-second (RFC 7519's NumericDate may be fractional):
        revocations compare it with the user's ``tokens_valid_after`` (microseconds), so a token
        is void after any revocation that followed its issue, even within the same second.
        ``not_before`` (that ``tokens_valid_after``, the database's clock) lifts ``iat`` so that a
        token issued right after a revocation is not void because this clock runs a little behind."""
        now = time.time()
        iat = max(now, not_before)
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": iat,
            "exp": int(iat) + self.ttl_s,
            "jti": secrets.token_urlsafe(16),
            "handle": handle,
            "role": role,
        }
        token = jwt.encode(
            claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": TOKEN_TYPE}
        )
        from chatflow.domain.user_models import IssuedToken

        return IssuedToken(token=token, expires_in=int(iat) + self.ttl_s - int(now), claims=claims)


class TokenVerifier:
    """Verifies access tokens with public keys only (the authorizer and $connect)."""

    def __init__(
        self,
        public_keys: Mapping[str, ec.EllipticCurvePublicKey],
        *,
        issuer: str,
        audience: str,
        leeway_s: int = 0,
        oidc_issuer: str | None = None,
        oidc_audience: str | None = None,
        oidc_jwks_url: str | None = None,
    ) -> None:
        self.public_keys = dict(public_keys)
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self.oidc_issuer = oidc_issuer
        self.oidc_audience = oidc_audience
        self.oidc_jwks_url = oidc_jwks_url
        self._jwks_client: jwt.PyJWKClient | None = None
        self._jwks_lock = threading.Lock()

    def verify(self, token: str) -> Identity:
        """The caller's identity; Unauthorized for anything but a valid, current token."""
        try:
            header = jwt.get_unverified_header(token)
            if self.oidc_issuer:
                # Only routes the token; the chosen path verifies everything (alg, key, claims).
                unverified = jwt.decode(token, options={"verify_signature": False})
                if unverified.get("iss") == self.oidc_issuer != self.issuer:
                    return self._verify_oidc(token)
            return self._verify_local(token, header)
        except Unauthorized:
            raise
        except (jwt.PyJWTError, ValueError, KeyError, TypeError):
            raise Unauthorized("invalid or expired token", code="invalid_token") from None

    def _verify_local(self, token: str, header: Mapping[str, Any]) -> Identity:
        if header.get("alg") != ALGORITHM or header.get("typ") != TOKEN_TYPE:
            raise Unauthorized("invalid or expired token", code="invalid_token")
        key = self.public_keys.get(str(header.get("kid")))
        if key is None:
            raise Unauthorized("invalid or expired token", code="invalid_token")
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],  # pinned: never taken from the token
            audience=self.audience,
            issuer=self.issuer,
            leeway=self.leeway_s,
            options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
        )
        role = claims.get("role")
        handle = claims.get("handle")
        if role not in _ROLES or not isinstance(handle, str):
            raise Unauthorized("invalid or expired token", code="invalid_token")
        return Identity(
            user_id=uuid.UUID(str(claims["sub"])),
            handle=handle,
            role=role,
            issued_at=float(claims["iat"]),
            token_id=str(claims["jti"]),
        )

    def _jwks(self) -> jwt.PyJWKClient:
        if self._jwks_client is None:
            with self._jwks_lock:
                if self._jwks_client is None:
                    if not self.oidc_jwks_url:
                        raise Unauthorized("invalid or expired token", code="invalid_token")
                    # Keys cached for an hour; an unknown kid triggers one refetch (key rotation).
                    self._jwks_client = jwt.PyJWKClient(
                        self.oidc_jwks_url, cache_keys=True, lifespan=3600, timeout=3
                    )
        return self._jwks_client

    def _verify_oidc(self, token: str) -> Identity:
        if not self.oidc_audience:
            # Fail closed: one issuer (a Cognito user pool) serves many app clients; without an
            # audience to check, a token minted for any of them would be accepted.
            raise Unauthorized("invalid or expired token", code="invalid_token")
        signing_key = self._jwks().get_signing_key_from_jwt(token)
        algorithm = signing_key.algorithm_name
        if algorithm not in OIDC_ALGORITHMS:
            raise Unauthorized("invalid or expired token", code="invalid_token")
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=[algorithm],
            issuer=self.oidc_issuer,
            leeway=self.leeway_s,
            options={"require": ["exp", "iat", "sub", "iss"], "verify_aud": False},
        )
        if not _is_access_token(jwt.get_unverified_header(token), claims):
            # An ID token says who signed in to some client; it is no permission to call an
            # API (and it is often handed to third parties): only access tokens are accepted.
            raise Unauthorized("invalid or expired token", code="invalid_token")
        # RFC 9068 access tokens carry ``aud``; Cognito access tokens carry ``client_id`` instead.
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        if self.oidc_audience not in audiences and claims.get("client_id") != self.oidc_audience:
            raise Unauthorized("invalid or expired token", code="invalid_token")
        subject = str(claims["sub"])
        issuer = str(claims["iss"])
        return Identity(
            user_id=external_user_id(issuer, subject),
            handle=external_handle(claims),
            role="user",
            issued_at=float(claims["iat"]),
            token_id=str(claims.get("jti") or claims.get("origin_jti") or f"oidc-{claims['iat']}"),
            external_subject=subject,
        )


def _is_access_token(header: Mapping[str, Any], claims: Mapping[str, Any]) -> bool:
    """Whether an external token is an ACCESS token, as its issuer marks it: Cognito's
    ``token_use`` claim (``access`` vs ``id``), or RFC 9068's header ``typ: at+jwt`` (also written
    ``application/at+jwt``). A ``token_use`` other than ``access`` refuses whatever the header
    says; a token marked neither way (a plain OIDC ID token) is refused."""
    token_use = claims.get("token_use")
    if token_use is not None:
        return bool(token_use == "access")  # noqa: S105 (a claim value, not a secret)
    typ = str(header.get("typ") or "").lower().removeprefix("application/")
    return typ == "at+jwt"


def external_user_id(issuer: str, subject: str) -> uuid.UUID:
    """The Chatflow user id of an external identity: stable, no lookup needed in the authorizer."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{issuer}#{subject}")


def external_handle(claims: Mapping[str, Any]) -> str:
    """A handle proposal from OIDC claims (the stored handle may get a suffix on collision)."""
    for name in ("cognito:username", "preferred_username", "username", "email"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            candidate = NOT_HANDLE_CHARS.sub("", value.split("@", 1)[0].lower())[:32]
            if len(candidate) >= 3:
                return candidate
    return "u-" + hashlib.sha256(str(claims.get("sub")).encode()).hexdigest()[:12]


def bearer_token(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value (None if absent/malformed)."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


#: Prefix of the subprotocol entry that carries the access token: ``bearer.<jwt>``.
WS_TOKEN_PROTOCOL_PREFIX = "bearer."  # noqa: S105


def token_from_subprotocols(header: str | None) -> str | None:
    """The access token offered as ``Sec-WebSocket-Protocol: chatflow.v1, bearer.<jwt>``.

    Browsers cannot set headers on a WebSocket, but they can offer subprotocols; this keeps the
    token out of URLs (and so out of access logs). The $connect handler then answers with
    ``Sec-WebSocket-Protocol: chatflow.v1`` (chatflow.ws.protocol.subprotocol_response_headers),
    or browsers drop the connection (docs/auth.md).
    """
    if not header:
        return None
    for raw in header.split(","):
        entry = raw.strip()
        if entry.startswith(WS_TOKEN_PROTOCOL_PREFIX) and len(entry) > len(WS_TOKEN_PROTOCOL_PREFIX):
            return entry[len(WS_TOKEN_PROTOCOL_PREFIX) :]
    return None


def verifier_from_settings(settings: Settings) -> TokenVerifier:
    return TokenVerifier(
        load_public_keys(settings.jwt_public_keys or ""),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_s=settings.jwt_leeway_s,
        oidc_issuer=settings.oidc_issuer,
        oidc_audience=settings.oidc_audience,
        oidc_jwks_url=settings.oidc_jwks_url,
    )


def signer_from_settings(settings: Settings, private_key_pem: str) -> TokenSigner:
    """The deployment's signer; the key comes from the environment or Secrets Manager
    (chatflow.secrets.jwt_private_key, resolved by the container on first use)."""
    return TokenSigner(
        private_key_pem,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_s=settings.access_token_ttl_s,
    )
