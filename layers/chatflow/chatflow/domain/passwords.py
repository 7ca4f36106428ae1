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

from chatflow.errors import InvalidInput

#: Cost: N=2**15, r=8, p=1 -> 32 MiB and ~0.1 s per hash on this machine. OWASP's first choice
#: (N=2**17) needs 128 MiB per request, too much for a 1 GB Lambda under load; see docs/auth.md.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32
_SALT_BYTES = 16
_MAXMEM = 128 * SCRYPT_N * SCRYPT_R * 2  # room for the parameters above

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


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=_DKLEN, maxmem=max(_MAXMEM, 128 * n * r * 2)
    )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _derive(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; False for any malformed or unusable hash."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or len(password) > PASSWORD_MAX_CHARS:
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return False
    # Refuse absurd parameters from a tampered row instead of allocating gigabytes.
    if not (2 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16):
        return False
    return hmac.compare_digest(_derive(password, salt, n, r, p), expected)


def needs_rehash(stored: str) -> bool:
    return not stored.startswith(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$")


# A valid hash of a random password: verifying against it when the user does not exist costs the
# same time as a real check, so response times do not reveal which handles are registered.
_DUMMY_HASH: str | None = None


def dummy_verify(password: str) -> None:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    verify_password(password, _DUMMY_HASH)
