"""``POST /auth/password`` and ``DELETE /admin/users/{id}`` (issue 9 §1) through API Gateway's path:
the real authorizer, then the http_api handler, over this run's Postgres and Redis.

A password change is a revocation path: the new hash at the configured scrypt cost, every access
token issued so far void, every refresh token revoked, a fresh pair for the caller; a wrong current
password is a failed sign-in for the login throttle. The admin delete is the admin CLI's soft
delete by id. (Live sockets: tests/integration/test_ws_revocation.py.)
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
import pytest

from chatflow.settings import get_settings
from tests.support.apigw import HttpApiClient, HttpResponse
from tests.support.identity import http_client, promote, register, unique_handle
from tests.support.lambdas import reset_handlers

DB = psycopg.Connection[dict[str, Any]]
PASSWORD = "correct horse 1"
NEW_PASSWORD = "battery staple 2"


@pytest.fixture
def api(chatflow_env: dict[str, str]) -> HttpApiClient:
    reset_handlers()
    return http_client()


def _ip() -> str:
    """A fresh IPv6 documentation address: each test's throttle budget is its own."""
    return f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::1"


def _change(
    api: HttpApiClient, token: str, current: str, new: str = NEW_PASSWORD, ip: str | None = None
) -> HttpResponse:
    return api.post(
        "/auth/password",
        json={"currentPassword": current, "newPassword": new},
        token=token,
        source_ip=ip or _ip(),
    )


def _login(api: HttpApiClient, handle: str, password: str, ip: str | None = None) -> HttpResponse:
    return api.post("/auth/login", json={"handle": handle, "password": password}, source_ip=ip or _ip())


def _hash_of(db: DB, user_id: str) -> str:
    row = db.execute("SELECT password_hash FROM users WHERE id = %s", (user_id,)).fetchone()
    assert row is not None
    return str(row["password_hash"])


# --- POST /auth/password -----------------------------------------------------------------------


def test_a_password_change_voids_every_session_and_signs_this_device_in_again(
    api: HttpApiClient, db: DB
) -> None:
    handle = unique_handle()
    laptop = register(api, handle)
    phone = _login(api, handle, PASSWORD).json
    for pair in (laptop, phone):  # both sessions live (and their status cached in Redis)
        assert api.get("/users/me", token=pair["accessToken"]).status == 200
    old_hash = _hash_of(db, laptop["user"]["id"])

    resp = _change(api, laptop["accessToken"], PASSWORD)
    assert resp.status == 200, resp.body
    fresh = resp.json
    assert fresh["tokenType"] == "Bearer"
    assert fresh["user"]["id"] == laptop["user"]["id"]
    assert PASSWORD not in resp.body
    assert NEW_PASSWORD not in resp.body

    # Every token issued before the change is void, the caller's own included...
    for pair in (laptop, phone):
        me = api.get("/users/me", token=pair["accessToken"])
        assert me.status == 401
        assert me.json["error"]["code"] == "token_revoked"
        assert api.post("/auth/refresh", json={"refreshToken": pair["refreshToken"]}).status == 401
    # ...the fresh pair works (access token, and its refresh token rotates).
    assert api.get("/users/me", token=fresh["accessToken"]).status == 200
    rotated = api.post("/auth/refresh", json={"refreshToken": fresh["refreshToken"]})
    assert rotated.status == 200, rotated.body
    assert api.get("/users/me", token=rotated.json["accessToken"]).status == 200

    # The new hash, at the configured scrypt cost; the old password no longer signs in.
    new_hash = _hash_of(db, laptop["user"]["id"])
    s = get_settings()
    assert new_hash != old_hash
    cost = f"{2**s.password_scrypt_log2_n}${s.password_scrypt_r}${s.password_scrypt_p}"
    assert new_hash.startswith(f"scrypt${cost}$")
    assert NEW_PASSWORD not in new_hash
    assert _login(api, handle, PASSWORD).status == 401
    assert _login(api, handle, NEW_PASSWORD).status == 200


def test_a_wrong_current_password_is_refused_and_changes_nothing(api: HttpApiClient, db: DB) -> None:
    pair = register(api)
    before = _hash_of(db, pair["user"]["id"])
    resp = _change(api, pair["accessToken"], "not my password")
    assert resp.status == 401
    assert resp.json["error"]["code"] == "invalid_credentials"
    assert "not my password" not in resp.body
    assert _hash_of(db, pair["user"]["id"]) == before
    assert api.get("/users/me", token=pair["accessToken"]).status == 200  # the session is intact
    assert api.post("/auth/refresh", json={"refreshToken": pair["refreshToken"]}).status == 200


def test_wrong_current_passwords_count_in_the_sign_in_throttle(api: HttpApiClient) -> None:
    """Per handle and address, the same counter as POST /auth/login: failed checks answer 401
    until the wait starts, then 429 (even for the right password, never checked); login from
    there waits too, while the owner elsewhere is not slowed down."""
    s = get_settings()
    handle, ip = unique_handle(), _ip()
    pair = register(api, handle)
    token = pair["accessToken"]
    # As for login: the free failures, and the one past them that starts the wait, are checked.
    tries = s.login_free_failures + 1
    answers = [_change(api, token, f"guess {i}", ip=ip).status for i in range(tries)]
    assert answers == [401] * tries
    throttled = _change(api, token, "one more guess", ip=ip)
    assert throttled.status == 429, throttled.body
    assert throttled.json["error"]["code"] == "too_many_attempts"
    assert 0 < int(throttled.headers["retry-after"]) <= s.login_backoff_max_s
    assert _change(api, token, PASSWORD, ip=ip).status == 429  # right password, not even checked
    assert _login(api, handle, PASSWORD, ip).status == 429  # one counter with the login route
    assert _login(api, handle, PASSWORD, _ip()).status == 200  # another address: no wait


def test_failed_sign_ins_count_for_the_password_route_too(api: HttpApiClient) -> None:
    s = get_settings()
    handle, ip = unique_handle(), _ip()
    pair = register(api, handle)
    for _ in range(s.login_free_failures + 1):
        _login(api, handle, "wrong guess", ip)
    assert _change(api, pair["accessToken"], PASSWORD, ip=ip).status == 429


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"currentPassword": PASSWORD, "newPassword": "short"}, "invalid"),
        ({"currentPassword": PASSWORD, "newPassword": " " * 12}, "weak_password"),
        ({"currentPassword": PASSWORD, "newPassword": "x" * 129}, "invalid"),
        ({"currentPassword": PASSWORD}, "invalid"),
        ({"currentPassword": "", "newPassword": NEW_PASSWORD}, "invalid"),
        ({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD, "extra": 1}, "invalid"),
    ],
)
def test_the_new_password_is_validated_like_register(
    api: HttpApiClient, db: DB, body: dict[str, Any], code: str
) -> None:
    pair = register(api)
    before = _hash_of(db, pair["user"]["id"])
    resp = api.post("/auth/password", json=body, token=pair["accessToken"], source_ip=_ip())
    assert resp.status == 422, resp.body
    assert resp.json["error"]["code"] == code
    assert PASSWORD not in resp.body
    assert _hash_of(db, pair["user"]["id"]) == before
    assert api.get("/users/me", token=pair["accessToken"]).status == 200


def test_the_password_route_needs_a_bearer_token_and_json(api: HttpApiClient) -> None:
    body = {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
    assert api.post("/auth/password", json=body).status == 401  # API Gateway: no identity source
    pair = register(api)
    form = api.post(
        "/auth/password",
        body=f"currentPassword={PASSWORD}&newPassword={NEW_PASSWORD}",
        headers={"content-type": "application/x-www-form-urlencoded"},
        token=pair["accessToken"],
    )
    assert form.status == 415
    assert form.json["error"]["code"] == "unsupported_media_type"
    assert PASSWORD not in form.body
    assert NEW_PASSWORD not in form.body


def test_a_second_change_needs_the_new_password_and_the_new_token(api: HttpApiClient) -> None:
    pair = register(api)
    first = _change(api, pair["accessToken"], PASSWORD)
    assert first.status == 200, first.body
    assert _change(api, pair["accessToken"], NEW_PASSWORD, "third password 3").status == 401  # old token
    assert _change(api, first.json["accessToken"], PASSWORD, "third password 3").status == 401  # old password
    second = _change(api, first.json["accessToken"], NEW_PASSWORD, "third password 3")
    assert second.status == 200, second.body
    assert _login(api, pair["user"]["handle"], "third password 3").status == 200


# --- DELETE /admin/users/{id} ----------------------------------------------------------------


@pytest.fixture
def admin_token(api: HttpApiClient) -> tuple[str, str]:
    handle = unique_handle("admin")
    register(api, handle)
    promote(handle)
    pair = _login(api, handle, PASSWORD).json
    assert pair["user"]["role"] == "admin"
    return str(pair["accessToken"]), str(pair["user"]["id"])


def test_admin_delete_soft_deletes_and_voids_every_token(
    api: HttpApiClient, db: DB, admin_token: tuple[str, str]
) -> None:
    token, _ = admin_token
    victim = register(api)
    victim_id = victim["user"]["id"]
    assert api.get("/users/me", token=victim["accessToken"]).status == 200  # cached as active

    resp = api.delete(f"/admin/users/{victim_id}", token=token)
    assert resp.status == 200, resp.body
    assert resp.json["user"]["status"] == "deleted"
    assert resp.json["sessionsClosed"] == 0  # no live socket (test_ws_revocation has some)

    me = api.get("/users/me", token=victim["accessToken"])
    assert me.status == 401
    assert me.json["error"]["code"] == "account_disabled"
    assert api.post("/auth/refresh", json={"refreshToken": victim["refreshToken"]}).status == 401
    assert _login(api, victim["user"]["handle"], PASSWORD).status == 403
    row = db.execute("SELECT status FROM users WHERE id = %s", (victim_id,)).fetchone()
    assert row is not None
    assert row["status"] == "deleted"

    again = api.delete(f"/admin/users/{victim_id}", token=token)  # idempotent
    assert again.status == 200, again.body
    assert again.json["user"]["status"] == "deleted"


def test_admin_delete_refuses_non_admins_unknown_users_and_self(
    api: HttpApiClient, admin_token: tuple[str, str]
) -> None:
    token, admin_id = admin_token
    user, other = register(api), register(api)
    refused = api.delete(f"/admin/users/{other['user']['id']}", token=user["accessToken"])
    assert refused.status == 403
    assert refused.json["error"]["code"] == "forbidden"
    assert api.get("/users/me", token=other["accessToken"]).status == 200  # untouched

    unknown = api.delete("/admin/users/0b3e5d0e-3a55-4f0e-9a47-1f0c7a1c2b3d", token=token)
    assert unknown.status == 404
    assert unknown.json["error"]["code"] == "not_found"
    assert api.delete("/admin/users/not-a-uuid", token=token).status == 422
    itself = api.delete(f"/admin/users/{admin_id}", token=token)
    assert itself.status == 422
    assert itself.json["error"]["code"] == "cannot_delete_self"
