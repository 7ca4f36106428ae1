"""scrypt password hashing: salted, self-describing, constant-time, policy bounds."""

from __future__ import annotations

import pytest

from chatflow.domain.passwords import (
    PASSWORD_MAX_CHARS,
    UNUSABLE_PASSWORD,
    ScryptParams,
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from chatflow.errors import InvalidInput


def test_hash_roundtrip_and_salting() -> None:
    first = hash_password("correct horse battery")
    second = hash_password("correct horse battery")
    assert first != second  # random salt
    assert first.startswith("scrypt$131072$8$1$")  # OWASP: N=2^17, r=8, p=1
    assert verify_password("correct horse battery", first)
    assert verify_password("correct horse battery", second)
    assert not verify_password("correct horse batterY", first)
    assert not needs_rehash(first)


def test_parameters_are_read_from_the_hash() -> None:
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"pw-old-cost", salt=salt, n=2**10, r=8, p=1, dklen=32)
    salt_b64 = base64.b64encode(salt).decode().rstrip("=")
    digest_b64 = base64.b64encode(digest).decode().rstrip("=")
    stored = f"scrypt$1024$8$1${salt_b64}${digest_b64}"
    assert verify_password("pw-old-cost", stored)
    assert needs_rehash(stored)


@pytest.mark.parametrize(
    "stored",
    [
        UNUSABLE_PASSWORD,
        "",
        "scrypt$x$8$1$aa$bb",
        "bcrypt$...",
        "scrypt$1073741824$8$1$AAAA$AAAA",
        "test-only",
    ],
)
def test_malformed_or_unusable_hashes_never_match(stored: str) -> None:
    assert not verify_password("anything", stored)


@pytest.mark.parametrize("password", ["short", "", " " * 10, "x" * (PASSWORD_MAX_CHARS + 1)])
def test_policy_refuses(password: str) -> None:
    with pytest.raises(InvalidInput):
        check_password_policy(password)


def test_policy_accepts_bounds() -> None:
    check_password_policy("x" * 8)
    check_password_policy("x" * PASSWORD_MAX_CHARS)


def test_needs_rehash_only_for_a_lower_cost() -> None:
    low = ScryptParams(2**10, 8, 1)
    high = ScryptParams(2**12, 8, 1)
    stored = hash_password("pw-low-cost", low)
    assert stored.startswith("scrypt$1024$8$1$")
    assert needs_rehash(stored, high)
    assert not needs_rehash(stored, low)
    assert not needs_rehash(hash_password("pw", high), low)  # never downgrade
    assert needs_rehash(hash_password("pw", ScryptParams(2**12, 4, 1)), high)  # r counts too
    assert not needs_rehash(UNUSABLE_PASSWORD, high)  # external accounts have no password
    assert not needs_rehash("scrypt$x$8$1$aa$bb", high)


def test_a_stored_hash_asking_for_too_much_memory_is_refused() -> None:
    import base64

    b64 = base64.b64encode(b"0123456789abcdef").decode().rstrip("=")
    # N=2^20, r=32: 4 GiB per hash -- a tampered row must not make the function allocate it.
    assert not verify_password("anything", f"scrypt$1048576$32$1${b64}${b64}")
    assert not verify_password("anything", f"scrypt$1000$8$1${b64}${b64}")  # N not a power of 2
