"""Auth and users routes through API Gateway's path: authorizer first, then the http_api handler.

Real Postgres and Redis (conftest fixtures); events are API Gateway HTTP API payload 2.0.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest

from tests.support.apigw import HttpApiClient
from tests.support.identity import http_client, promote, register, unique_handle
from tests.support.lambdas import load_handler_module, reset_handlers

DB = psycopg.Connection[dict[str, Any]]
PASSWORD = "correct horse 1"


@pytest.fixture
def api(chatflow_env: dict[str, str]) -> HttpApiClient:
    reset_handlers()
    return http_client()


def _token_for(api: HttpApiClient, handle: str, password: str = PASSWORD) -> dict[str, Any]:
    resp = api.post("/auth/login", json={"handle": handle, "password": password})
    assert resp.status == 200, resp.body
    body: dict[str, Any] = resp.json
    return body


def test_register_returns_201_token_pair_and_me_works(api: HttpApiClient, db: DB) -> None:
    handle = unique_handle("Ada")
    resp = api.post("/auth/register", json={"handle": handle, "password": PASSWORD, "displayName": "Ada L."})
    assert resp.status == 201, resp.body
    body = resp.json
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == 900
    assert body["refreshToken"].startswith("rt_")
    assert body["user"]["handle"] == handle.lower()  # stored lower-cased
    assert body["user"]["displayName"] == "Ada L."
    assert body["user"]["role"] == "user"
    # UTC with "Z", the same timestamp form as rooms and messages (was "+00:00").
    assert body["user"]["createdAt"].endswith("Z"), body["user"]["createdAt"]

    me = api.get("/users/me", token=body["accessToken"])
    assert me.status == 200, me.body
    assert me.json["id"] == body["user"]["id"]
    assert me.json["createdAt"] == body["user"]["createdAt"]
    assert me.json["handle"] == handle.lower()

    row = db.execute("SELECT password_hash FROM users WHERE id = %s", (body["user"]["id"],)).fetchone()
    assert row is not None
    assert row["password_hash"].startswith("scrypt$")
    assert PASSWORD not in row["password_hash"]
    stored = db.execute(
        "SELECT token_hash FROM refresh_tokens WHERE user_id = %s", (body["user"]["id"],)
    ).fetchall()
    assert len(stored) == 1
    assert body["refreshToken"].encode() not in bytes(stored[0]["token_hash"])


def test_handles_are_case_insensitively_unique(api: HttpApiClient) -> None:
    handle = unique_handle("bob")
    register(api, handle)
    again = api.post("/auth/register", json={"handle": handle.upper(), "password": PASSWORD})
    assert again.status == 409
    assert again.json["error"]["code"] == "handle_taken"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"handle": "ab", "password": PASSWORD}, "handle"),
        ({"handle": "has space", "password": PASSWORD}, "handle"),
        ({"handle": "x" * 33, "password": PASSWORD}, "handle"),
        ({"handle": "okhandle", "password": "short"}, "password"),
        ({"handle": "okhandle"}, "password"),
        ({"handle": "okhandle", "password": PASSWORD, "role": "admin"}, "role"),
    ],
)
def test_register_validation_errors_are_422_with_fields(
    api: HttpApiClient, payload: dict[str, Any], field: str
) -> None:
    resp = api.post("/auth/register", json=payload)
    assert resp.status == 422, resp.body
    error = resp.json["error"]
    assert error["code"] == "invalid"
    assert any(f["loc"][-1] == field for f in error["details"]["fields"]), error


def test_login_does_not_reveal_which_handles_exist(api: HttpApiClient) -> None:
    handle = unique_handle()
    register(api, handle)
    wrong_password = api.post("/auth/login", json={"handle": handle, "password": "not the password"})
    unknown_user = api.post("/auth/login", json={"handle": unique_handle(), "password": "not the password"})
    assert wrong_password.status == unknown_user.status == 401
    assert wrong_password.json == unknown_user.json
    assert wrong_password.json["error"]["code"] == "invalid_credentials"
    ok = api.post("/auth/login", json={"handle": handle.upper(), "password": PASSWORD})
    assert ok.status == 200


@pytest.mark.parametrize("handle", ["ada\x00", "\x00", "a\x00" * 20])
def test_login_with_a_handle_no_account_can_have_is_401_not_500(api: HttpApiClient, handle: str) -> None:
    # A NUL reached the Postgres lookup, which refuses it (DataError -> 500).
    resp = api.post("/auth/login", json={"handle": handle, "password": "whatever1"})
    assert resp.status == 401, resp.body
    assert resp.json["error"]["code"] == "invalid_credentials"


@pytest.mark.parametrize("name", ["Ada\x00", "line\nbreak", "bell\x07", "del\x7f"])
def test_register_refuses_a_display_name_with_control_characters(api: HttpApiClient, name: str) -> None:
    # A NUL was a 500 (Postgres cannot store it); other control characters are refused alike.
    resp = api.post(
        "/auth/register", json={"handle": unique_handle(), "password": PASSWORD, "displayName": name}
    )
    assert resp.status == 422, resp.body
    assert resp.json["error"]["code"] == "invalid_display_name"


def test_refresh_rotates_and_reuse_revokes_the_family(api: HttpApiClient) -> None:
    first = register(api)
    second = api.post("/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert second.status == 200, second.body
    assert second.json["refreshToken"] != first["refreshToken"]
    assert api.get("/users/me", token=second.json["accessToken"]).status == 200

    third = api.post("/auth/refresh", json={"refreshToken": second.json["refreshToken"]})
    assert third.status == 200

    # The first token was rotated away: presenting it again is theft -> whole family revoked.
    replay = api.post("/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert replay.status == 401
    assert replay.json["error"]["code"] == "invalid_refresh_token"
    legit = api.post("/auth/refresh", json={"refreshToken": third.json["refreshToken"]})
    assert legit.status == 401  # the legitimate holder's latest token died with the family


def test_reuse_only_revokes_that_family(api: HttpApiClient) -> None:
    handle = unique_handle()
    laptop = register(api, handle)
    phone = _token_for(api, handle)
    rotated = api.post("/auth/refresh", json={"refreshToken": laptop["refreshToken"]}).json
    assert api.post("/auth/refresh", json={"refreshToken": laptop["refreshToken"]}).status == 401
    assert api.post("/auth/refresh", json={"refreshToken": rotated["refreshToken"]}).status == 401
    assert api.post("/auth/refresh", json={"refreshToken": phone["refreshToken"]}).status == 200


def test_refresh_with_unknown_or_expired_token(api: HttpApiClient, db: DB) -> None:
    assert api.post("/auth/refresh", json={"refreshToken": "rt_nope"}).status == 401
    pair = register(api)
    db.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE user_id = %s",
        (pair["user"]["id"],),
    )
    resp = api.post("/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    assert resp.status == 401


def test_logout_revokes_the_refresh_family_only(api: HttpApiClient) -> None:
    handle = unique_handle()
    one = register(api, handle)
    two = _token_for(api, handle)
    resp = api.post("/auth/logout", json={"refreshToken": one["refreshToken"]})
    assert resp.status == 204
    assert api.post("/auth/refresh", json={"refreshToken": one["refreshToken"]}).status == 401
    assert api.post("/auth/refresh", json={"refreshToken": two["refreshToken"]}).status == 200
    # Access tokens stay valid until they expire (short-lived) unless all=true.
    assert api.get("/users/me", token=two["accessToken"]).status == 200


def test_logout_all_voids_every_token_at_once(api: HttpApiClient) -> None:
    handle = unique_handle()
    one = register(api, handle)
    two = _token_for(api, handle)
    assert api.get("/users/me", token=two["accessToken"]).status == 200  # status now cached in Redis
    resp = api.post("/auth/logout", json={"refreshToken": one["refreshToken"]}, query={"all": "true"})
    assert resp.status == 204
    for pair in (one, two):
        me = api.get("/users/me", token=pair["accessToken"])
        assert me.status == 401
        assert me.json["error"]["code"] == "token_revoked"
        assert api.post("/auth/refresh", json={"refreshToken": pair["refreshToken"]}).status == 401
    # Signing in again right away (even within the same second) works.
    fresh = _token_for(api, handle)
    assert api.get("/users/me", token=fresh["accessToken"]).status == 200


def test_a_token_issued_between_two_revocations_in_one_second_is_void_after_the_second(
    api: HttpApiClient,
) -> None:
    """iat is sub-second: a session signed in between two "log out everywhere" within the same
    second (whole-second iat lifted to the next second survived the second one)."""
    handle = unique_handle()
    first = register(api, handle)
    while time.time() % 1 > 0.2:  # all three steps within one second (each takes a few ms)
        time.sleep(0.01)

    def log_out_everywhere(refresh_token: str) -> int:
        return api.post("/auth/logout", json={"refreshToken": refresh_token}, query={"all": "true"}).status

    assert log_out_everywhere(first["refreshToken"]) == 204
    between = _token_for(api, handle)
    assert api.get("/users/me", token=between["accessToken"]).status == 200
    assert log_out_everywhere(between["refreshToken"]) == 204
    me = api.get("/users/me", token=between["accessToken"])
    assert (me.status, me.json["error"]["code"]) == (401, "token_revoked")
    fresh = _token_for(api, handle)  # and right after it, a new session works
    assert api.get("/users/me", token=fresh["accessToken"]).status == 200


def test_logout_all_needs_a_valid_refresh_token(api: HttpApiClient) -> None:
    resp = api.post("/auth/logout", json={"refreshToken": "rt_unknown"}, query={"all": "true"})
    assert resp.status == 401
    assert api.post("/auth/logout", json={"refreshToken": "rt_unknown"}).status == 204  # idempotent


@pytest.mark.parametrize("staleness", ["rotated", "revoked", "expired", "before_logout_all"])
def test_logout_all_refuses_a_refresh_token_that_is_no_longer_live(
    api: HttpApiClient, db: DB, staleness: str
) -> None:
    """Only a live refresh token may end every session: an old one (a backup, a log line, a
    rotated copy) must not sign the owner out everywhere."""
    handle = unique_handle()
    stale = register(api, handle)
    if staleness == "rotated":
        assert api.post("/auth/refresh", json={"refreshToken": stale["refreshToken"]}).status == 200
    elif staleness == "revoked":
        assert api.post("/auth/logout", json={"refreshToken": stale["refreshToken"]}).status == 204
    elif staleness == "expired":
        db.execute(
            "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE user_id = %s",
            (stale["user"]["id"],),
        )
    else:
        db.execute(
            "UPDATE refresh_tokens SET created_at = created_at - interval '1 hour' WHERE user_id = %s",
            (stale["user"]["id"],),
        )
        db.execute(
            "UPDATE users SET tokens_valid_after = now() - interval '1 minute' WHERE id = %s",
            (stale["user"]["id"],),
        )
    live = _token_for(api, handle)  # another device, signed in after the above
    assert api.get("/users/me", token=live["accessToken"]).status == 200
    resp = api.post("/auth/logout", json={"refreshToken": stale["refreshToken"]}, query={"all": "true"})
    assert resp.status == 401
    assert resp.json["error"]["code"] == "invalid_refresh_token"
    # The other session is untouched: its access and refresh tokens still work.
    assert api.get("/users/me", token=live["accessToken"]).status == 200
    assert api.post("/auth/refresh", json={"refreshToken": live["refreshToken"]}).status == 200


def test_me_requires_a_token(api: HttpApiClient) -> None:
    assert api.get("/users/me").status == 401  # API Gateway: identity source missing
    denied = api.get("/users/me", token="not-a-jwt")
    assert denied.status == 403  # API Gateway: authorizer said no
    assert denied.event is None  # the function never ran


def test_admin_ban_and_unban(api: HttpApiClient, db: DB, chatflow_env: dict[str, str]) -> None:
    admin_handle = unique_handle("admin")
    register(api, admin_handle)
    promote(admin_handle)
    admin = _token_for(api, admin_handle)
    assert admin["user"]["role"] == "admin"

    victim = register(api)
    victim_id = victim["user"]["id"]
    assert api.get("/users/me", token=victim["accessToken"]).status == 200  # cached as active

    resp = api.post(f"/admin/users/{victim_id}/ban", token=admin["accessToken"])
    assert resp.status == 200, resp.body
    assert resp.json["user"]["status"] == "banned"

    # The old access token still passes the (cacheable, I/O-free) authorizer but the handler
    # refuses it at once; the refresh token is revoked; login is refused.
    me = api.get("/users/me", token=victim["accessToken"])
    assert me.status == 401
    assert me.json["error"]["code"] == "account_disabled"
    assert api.post("/auth/refresh", json={"refreshToken": victim["refreshToken"]}).status == 401
    login = api.post("/auth/login", json={"handle": victim["user"]["handle"], "password": PASSWORD})
    assert login.status == 403

    # user.banned went through the outbox in the ban's transaction.
    events = db.execute(
        "SELECT detail FROM outbox WHERE detail_type = 'user.banned' AND detail->>'user_id' = %s",
        (victim_id,),
    ).fetchall()
    assert len(events) == 1
    assert events[0]["detail"]["banned_by"] == admin["user"]["id"]

    # Banning again is idempotent (no second event).
    assert api.post(f"/admin/users/{victim_id}/ban", token=admin["accessToken"]).status == 200
    count = db.execute(
        "SELECT count(*) AS n FROM outbox WHERE detail_type = 'user.banned' AND detail->>'user_id' = %s",
        (victim_id,),
    ).fetchone()
    assert count is not None
    assert count["n"] == 1

    unban = api.post(f"/admin/users/{victim_id}/unban", token=admin["accessToken"])
    assert unban.status == 200
    assert unban.json["user"]["status"] == "active"
    # Old tokens stay void after an unban; a new login works.
    assert api.get("/users/me", token=victim["accessToken"]).status == 401
    time.sleep(0)  # (no timing assumption: the new token's iat is lifted past tokens_valid_after)
    fresh = _token_for(api, victim["user"]["handle"])
    assert api.get("/users/me", token=fresh["accessToken"]).status == 200


def test_ban_is_admin_only_and_validates_target(api: HttpApiClient) -> None:
    user = register(api)
    other = register(api)
    resp = api.post(f"/admin/users/{other['user']['id']}/ban", token=user["accessToken"])
    assert resp.status == 403
    assert resp.json["error"]["code"] == "forbidden"
    assert api.get("/users/me", token=other["accessToken"]).status == 200

    admin_handle = unique_handle("admin")
    admin_pair = register(api, admin_handle)
    promote(admin_handle)
    # The role comes from the database on every request: the token minted before the promotion
    # already carries admin rights (and a demotion would take them away at once).
    unknown = api.post(f"/admin/users/{uuid.uuid4()}/ban", token=admin_pair["accessToken"])
    assert unknown.status == 404
    bad_id = api.post("/admin/users/not-a-uuid/ban", token=admin_pair["accessToken"])
    assert bad_id.status == 422
    self_ban = api.post(f"/admin/users/{admin_pair['user']['id']}/ban", token=admin_pair["accessToken"])
    assert self_ban.status == 422


def test_demotion_takes_effect_on_the_next_request(api: HttpApiClient) -> None:
    from chatflow.admin_cli import main

    handle = unique_handle("admin")
    pair = register(api, handle)
    promote(handle)
    target = register(api)
    assert main(["demote", handle]) == 0
    resp = api.post(f"/admin/users/{target['user']['id']}/ban", token=pair["accessToken"])
    assert resp.status == 403


def test_ban_calls_the_wired_session_terminator(api: HttpApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[uuid.UUID] = []

    class RecordingTerminator:
        def terminate_user_sessions(self, user_id: uuid.UUID) -> int:
            closed.append(user_id)
            return 2

    admin_handle = unique_handle("admin")
    register(api, admin_handle)
    promote(admin_handle)
    admin = _token_for(api, admin_handle)
    victim = register(api)
    users = load_handler_module("http_api").container.users  # REALTIME's terminator is wired in
    monkeypatch.setattr(users, "session_terminator", RecordingTerminator())
    resp = api.post(f"/admin/users/{victim['user']['id']}/ban", token=admin["accessToken"])
    assert resp.status == 200
    assert resp.json["sessionsClosed"] == 2
    assert closed == [uuid.UUID(victim["user"]["id"])]


def test_admin_cli_reports_unknown_handles(
    chatflow_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from chatflow.admin_cli import main

    reset_handlers()
    assert main(["promote", unique_handle("ghost")]) == 1
    assert "no user" in capsys.readouterr().err


def test_jwks_publishes_the_verification_keys(api: HttpApiClient) -> None:
    import jwt

    resp = api.get("/.well-known/jwks.json")
    assert resp.status == 200
    keys = resp.json["keys"]
    assert len(keys) == 1
    assert keys[0]["alg"] == "ES256"
    assert "d" not in keys[0]
    pair = register(api)
    header = jwt.get_unverified_header(pair["accessToken"])
    assert header["kid"] == keys[0]["kid"]
    claims = jwt.decode(
        pair["accessToken"], jwt.PyJWK(keys[0]).key, algorithms=["ES256"], audience="chatflow-clients"
    )
    assert claims["sub"] == pair["user"]["id"]


def test_deleted_user_is_refused_at_once(api: HttpApiClient) -> None:
    from chatflow.admin_cli import main

    pair = register(api)
    assert api.get("/users/me", token=pair["accessToken"]).status == 200  # cached as active
    assert main(["delete", pair["user"]["handle"]]) == 0
    me = api.get("/users/me", token=pair["accessToken"])
    assert me.status == 401
    assert me.json["error"]["code"] == "account_disabled"
    assert api.post("/auth/refresh", json={"refreshToken": pair["refreshToken"]}).status == 401
    login = api.post("/auth/login", json={"handle": pair["user"]["handle"], "password": PASSWORD})
    assert login.status == 403
