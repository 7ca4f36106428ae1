"""Password hashing with scrypt (hashlib, OpenSSL): salted, parameters stored in the hash string.

Format: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``. Verification reads the parameters from the
stored string, so raising the cost later keeps old hashes valid (:func:`needs_rehash` tells when to
re-hash at the next login). Comparison is constant-time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from chatflow.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt cost: memory is 128 * n * r bytes per hash (N=2^17, r=8: 128 MiB)."""

    n: int
    r: int
    p: int

    @classmethod
    def from_log2(cls, log2_n: int, r: int, p: int) -> ScryptParams:
        return cls(2**log2_n, r, p)

    @property
    def memory_bytes(self) -> int:
        return 128 * self.n * self.r

    def weaker_than(self, other: ScryptParams) -> bool:
        return self.n < other.n or self.r < other.r or self.p < other.p


#: Current OWASP guidance (Password Storage Cheat Sheet): N=2^17, r=8, p=1 -> 128 MiB and
#: ~0.3 s per hash on this machine. The http_api function has 1024 MB and serves one request at a
#: time, so one hash fits with room to spare (docs/auth.md). Settings may choose another cost
#: (PASSWORD_SCRYPT_LOG2_N, tests lower it); hashes record their own parameters.
DEFAULT_PARAMS = ScryptParams(2**17, 8, 1)
#: A stored hash asking for more memory than this is refused (a tampered row must not make the
#: function allocate gigabytes): twice the default.
MAX_MEMORY_BYTES = 2 * DEFAULT_PARAMS.memory_bytes
_DKLEN = 32
_SALT_BYTES = 16

PASSWORD_MIN_CHARS = 8
#: An upper bound keeps hashing cost bounded (a 1 MB "password" must not cost a hash of 1 MB).
PASSWORD_MAX_CHARS = 128

#: A hash string no password matches (accounts that sign in through an external OIDC issuer).
UNUSABLE_PASSWORD = "!"  # noqa: S105 (a marker, not a password)


def check_password_policy(password: str) -> None:
    """Raise InvalidInput unless ``password`` is acceptable."""
    if not PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS:
        raise InvalidInput(
            f"password must be {PASSWORD_MIN_CHARS}-{PASSWORD_MAX_CHARS} characters",
            code="weak_password",
        )
    if password.strip() == "":
        raise InvalidInput("password must not be blank", code="weak_password")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, params: ScryptParams) -> bytes:
    # hashlib's maxmem must exceed 128*n*r (plus its own overhead): allow twice that.
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        dklen=_DKLEN,
        maxmem=2 * params.memory_bytes + 1024 * 1024,
    )


def hash_password(password: str, params: ScryptParams = DEFAULT_PARAMS) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _derive(password, salt, params)
    return f"scrypt${params.n}${params.r}${params.p}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[ScryptParams, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        params = ScryptParams(int(parts[1]), int(parts[2]), int(parts[3]))
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return None
    # Refuse absurd parameters from a tampered row instead of allocating gigabytes.
    n, r, p = params.n, params.r, params.p
    if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        return None
    if params.memory_bytes > MAX_MEMORY_BYTES:
        return None
    return params, salt, expected


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; False for any malformed or unusable hash."""
    parsed = _parse(stored)
    if parsed is None or len(password) > PASSWORD_MAX_CHARS:
        return False
    params, salt, expected = parsed
    return hmac.compare_digest(_derive(password, salt, params), expected)


def needs_rehash(stored: str, params: ScryptParams = DEFAULT_PARAMS) -> bool:
    """True when ``stored`` is a usable hash made with a lower cost than ``params`` (re-hash it at
    the next successful sign-in); never for the unusable marker or a malformed string."""
    parsed = _parse(stored)
    return parsed is not None and parsed[0].weaker_than(params)


# A valid hash of a random password per cost: verifying against it when the user does not exist
# costs the same time as a real check, so response times do not reveal which handles are registered.
_DUMMY_HASHES: dict[ScryptParams, str] = {}


def dummy_verify(password: str, params: ScryptParams = DEFAULT_PARAMS) -> None:
    dummy = _DUMMY_HASHES.get(params)
    if dummy is None:
        dummy = _DUMMY_HASHES[params] = hash_password(secrets.token_urlsafe(16), params)
    verify_password(password, dummy)
