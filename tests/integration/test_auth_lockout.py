"""Sign-in throttle (issue 10 §4) and password re-hash at sign-in (§5), through the http_api
handler with real Redis and Postgres.

Failures count per (handle, source IP) and per source IP across handles; past the free ones each
failure doubles the wait before the next attempt (429 + Retry-After). Every test signs in from
addresses of its own (TEST-NET / documentation ranges) so the per-IP budget of one test never
leaks into another.
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any

import psycopg
import pytest

from chatflow.domain.user_models import LoginBackoff
from tests.support.apigw import HttpApiClient, HttpResponse
from tests.support.identity import http_client, register, unique_handle
from tests.support.lambdas import reset_handlers

DB = psycopg.Connection[dict[str, Any]]
PASSWORD = "correct horse 1"


@pytest.fixture
def api(chatflow_env: dict[str, str]) -> HttpApiClient:
    reset_handlers()
    return http_client()


def _ip() -> str:
    """A fresh IPv6 documentation address (2001:db8::/32)."""
    return f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::{secrets.randbelow(65535):x}"


def _login(api: HttpApiClient, handle: str, password: str, ip: str) -> HttpResponse:
    return api.post("/auth/login", json={"handle": handle, "password": password}, source_ip=ip)


def _settings() -> Any:
    from chatflow.settings import get_settings

    return get_settings()


@pytest.mark.parametrize(
    ("source_ip", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),  # same /64: one budget
        ("::ffff:198.51.100.4", "198.51.100.4"),
        ("", "unknown"),
        ("not an address", "not an address"),
    ],
)
def test_the_throttle_counts_ipv6_callers_by_their_64(source_ip: str, counted_as: str) -> None:
    from chatflow.domain.users import throttle_source

    assert throttle_source(source_ip) == counted_as


def test_rotating_addresses_inside_one_ipv6_64_does_not_escape_the_budget(api: HttpApiClient) -> None:
    s = _settings()
    handle = unique_handle()
    register(api, handle)
    prefix = f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}"
    answers = [
        _login(api, handle, "wrong guess", f"{prefix}::{i + 1:x}").status
        for i in range(s.login_free_failures + 3)
    ]
    assert answers[: s.login_free_failures] == [401] * s.login_free_failures
    assert 429 in answers[s.login_free_failures :]


def test_backoff_policy_is_free_then_doubling_then_capped() -> None:
    policy = LoginBackoff(free_failures=3, base_s=2, max_s=60)
    assert [policy.delay_s(n) for n in range(8)] == [0, 0, 0, 0, 2, 4, 8, 16]
    assert policy.delay_s(9) == 60  # 64 capped
    assert policy.delay_s(10_000) == 60


def test_the_wait_grows_progressively_and_is_answered_429_with_retry_after(api: HttpApiClient) -> None:
    s = _settings()
    handle, ip = unique_handle(), _ip()
    register(api, handle)
    for _ in range(s.login_free_failures):
        assert _login(api, handle, "wrong guess", ip).status == 401  # the free ones: no wait
    policy = LoginBackoff(s.login_free_failures, s.login_backoff_base_s, s.login_backoff_max_s)
    throttle = _container_throttle()
    from chatflow.domain.users import throttle_source

    counted = throttle_source(ip)  # what the service hands the throttle (the /64 for IPv6)
    waits = []
    for failures in range(s.login_free_failures + 1, s.login_free_failures + 5):
        throttle.record_failure(handle, counted)  # as a failed attempt would after its wait
        waits.append(throttle.retry_after(handle, counted))
        assert waits[-1] is not None
        assert policy.delay_s(failures) - 1 <= waits[-1] <= policy.delay_s(failures)
    assert waits == sorted(waits)
    assert waits[-1] > waits[0]
    # While waiting, even the right password is answered 429 (it is never checked).
    throttled = _login(api, handle, PASSWORD, ip)
    assert throttled.status == 429
    assert throttled.json["error"]["code"] == "too_many_attempts"
    retry_after = int(throttled.headers["retry-after"])
    assert 0 < retry_after <= s.login_backoff_max_s
    assert throttled.json["error"]["details"]["retryAfterS"] == retry_after


def test_a_stranger_from_another_address_cannot_lock_the_owner_out(api: HttpApiClient) -> None:
    s = _settings()
    victim = unique_handle("victim")
    register(api, victim)
    attacker, owner = _ip(), _ip()
    answers = [_login(api, victim, f"guess {i}", attacker).status for i in range(s.login_free_failures + 6)]
    assert answers[: s.login_free_failures] == [401] * s.login_free_failures
    assert 429 in answers  # the attacker's address is slowed down...
    ok = _login(api, victim, PASSWORD, owner)
    assert ok.status == 200, ok.body  # ...the owner, elsewhere, signs in at once
    assert _login(api, victim, PASSWORD, attacker).status == 429  # still waiting there


def test_unknown_handles_are_throttled_like_known_ones(api: HttpApiClient) -> None:
    s = _settings()
    ip = _ip()
    known, ghost = unique_handle(), unique_handle("ghost")
    register(api, known)
    for handle in (known, ghost):
        answers = [_login(api, handle, "wrong guess", ip).status for _ in range(s.login_free_failures + 1)]
        assert answers == [401] * (s.login_free_failures + 1)
        assert _login(api, handle, "wrong guess", ip).status == 429


def test_a_successful_sign_in_forgets_that_address_s_failures(api: HttpApiClient) -> None:
    s = _settings()
    handle, ip = unique_handle(), _ip()
    register(api, handle)
    for _ in range(2):
        for _ in range(s.login_free_failures):
            assert _login(api, handle, "wrong guess", ip).status == 401
        assert _login(api, handle, PASSWORD, ip).status == 200


def test_credential_stuffing_from_one_address_is_bounded(api: HttpApiClient) -> None:
    """One address trying one password on many handles (credential stuffing): after the per-IP
    budget every further guess needs an exponentially growing wait, whatever the handle -- even a
    real account with the right password. Measured: how many guesses reach a password check."""
    s = _settings()
    ip, bystander_ip = _ip(), _ip()
    real = unique_handle()
    register(api, real)
    attempts = s.login_ip_free_failures + 40
    started = time.monotonic()
    answers = [_login(api, unique_handle("stuff"), "Summer2026!", ip).status for _ in range(attempts)]
    elapsed = time.monotonic() - started
    checked = answers.count(401)
    # The budget, plus at most one guess per doubling of the wait that elapsed meanwhile.
    bound = s.login_ip_free_failures + 1 + math.ceil(math.log2(1 + elapsed / s.login_backoff_base_s))
    assert s.login_ip_free_failures <= checked <= bound, (checked, bound, elapsed)
    assert answers.count(429) == attempts - checked
    assert answers[-1] == 429
    print(f"credential stuffing: {checked} of {attempts} guesses checked in {elapsed:.2f}s (bound {bound})")
    assert _login(api, real, PASSWORD, ip).status == 429  # the whole address waits
    assert _login(api, real, PASSWORD, bystander_ip).status == 200  # nobody else does


def test_the_throttle_fails_open_when_redis_is_down(
    api: HttpApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    from tests.support.lambdas import load_handler_module

    handle = unique_handle()
    register(api, handle)
    module = load_handler_module("http_api")
    throttle = module.container.login_throttle

    def down(*_: object, **__: object) -> None:
        raise redis.ConnectionError("down")

    monkeypatch.setattr(throttle, "retry_after", down)
    monkeypatch.setattr(throttle, "record_failure", down)
    assert _login(api, handle, "wrong guess", _ip()).status == 401
    assert _login(api, handle, PASSWORD, _ip()).status == 200


def _container_throttle() -> Any:
    from tests.support.lambdas import load_handler_module

    return load_handler_module("http_api").container.login_throttle


# --- §5: password cost -------------------------------------------------------------------------


def test_sign_in_rehashes_a_password_stored_at_a_lower_cost(api: HttpApiClient, db: DB) -> None:
    from chatflow.domain.passwords import ScryptParams, hash_password, needs_rehash, verify_password

    s = _settings()
    current = ScryptParams.from_log2(s.password_scrypt_log2_n, s.password_scrypt_r, s.password_scrypt_p)
    older = ScryptParams(current.n // 4, current.r, current.p)
    pair = register(api)
    old_hash = hash_password(PASSWORD, older)
    db.execute("UPDATE users SET password_hash = %s WHERE id = %s", (old_hash, pair["user"]["id"]))
    assert needs_rehash(old_hash, current)

    assert _login(api, pair["user"]["handle"], PASSWORD, _ip()).status == 200
    row = db.execute("SELECT password_hash FROM users WHERE id = %s", (pair["user"]["id"],)).fetchone()
    assert row is not None
    upgraded = row["password_hash"]
    assert upgraded != old_hash
    assert upgraded.startswith(f"scrypt${current.n}${current.r}${current.p}$")
    assert verify_password(PASSWORD, upgraded)
    assert not needs_rehash(upgraded, current)
    # The next sign-in finds nothing to upgrade and keeps the hash.
    assert _login(api, pair["user"]["handle"], PASSWORD, _ip()).status == 200
    row = db.execute("SELECT password_hash FROM users WHERE id = %s", (pair["user"]["id"],)).fetchone()
    assert row is not None
    assert row["password_hash"] == upgraded


def test_a_wrong_password_never_rehashes(api: HttpApiClient, db: DB) -> None:
    from chatflow.domain.passwords import ScryptParams, hash_password

    pair = register(api)
    old_hash = hash_password(PASSWORD, ScryptParams(2**10, 8, 1))
    db.execute("UPDATE users SET password_hash = %s WHERE id = %s", (old_hash, pair["user"]["id"]))
    assert _login(api, pair["user"]["handle"], "wrong guess", _ip()).status == 401
    row = db.execute("SELECT password_hash FROM users WHERE id = %s", (pair["user"]["id"],)).fetchone()
    assert row is not None
    assert row["password_hash"] == old_hash


def test_a_caller_at_the_longest_wait_does_not_get_its_free_failures_back(
    chatflow_env: dict[str, str],
) -> None:
    """The failure count outlives each wait by the quiet window: waiting out the longest wait
    and failing again waits again (instead of starting over with free failures)."""
    from chatflow.adapters.redis_client import RedisConnection
    from chatflow.adapters.redis_user_status import RedisLoginThrottle
    from chatflow.settings import get_settings

    redis = RedisConnection(get_settings())
    try:
        throttle = RedisLoginThrottle(
            redis, pair=LoginBackoff(1, 1, 2), per_ip=LoginBackoff(1000, 1, 2), window_s=1
        )
        handle, throttle_ip = unique_handle(), _ip()
        throttle.record_failure(handle, throttle_ip)  # free
        throttle.record_failure(handle, throttle_ip)  # waits 1 s
        throttle.record_failure(handle, throttle_ip)  # waits 2 s (the longest here)
        assert throttle.retry_after(handle, throttle_ip) == 2
        deadline = time.monotonic() + 5
        while throttle.retry_after(handle, throttle_ip) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert throttle.retry_after(handle, throttle_ip) is None  # the wait is over...
        throttle.record_failure(handle, throttle_ip)
        assert throttle.retry_after(handle, throttle_ip) == 2  # ...but the next failure waits again
    finally:
        redis.close()
