"""docs/http-api.md and docs/auth.md "HTTP routes": every route with its documented answers and
errors, the error envelope, content types, and token rotation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chatflow_client import ApiError, HttpApi
from tests.acceptance.support import PASSWORD, Actor, Answer, World, run
from tests.e2e.target import Target


def _envelope(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer
    body = answer.json
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str), body
    error: dict[str, Any] = body["error"]
    return error


async def _call(w: World, actor: Actor | None, method: str, path: str, body: Any = None, **kw: Any) -> Answer:
    token = await actor.token() if actor is not None else None
    return await w.http.call(method, path, json_body=body, token=token, **kw)


# --- accounts and tokens ----------------------------------------------------------------------------


def test_register_login_me_and_the_token_pair(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            handle = w.name("reg").upper()  # accepted in any case, stored lower-cased
            reg = await _call(w, None, "POST", "/auth/register", {"handle": handle, "password": PASSWORD})
            assert reg.status == 201, reg
            pair = reg.json
            assert {
                "accessToken",
                "tokenType",
                "expiresIn",
                "refreshToken",
                "refreshExpiresIn",
                "user",
            } <= set(pair)
            assert pair["tokenType"] == "Bearer"
            assert pair["refreshToken"].startswith("rt_")
            user = pair["user"]
            assert (user["handle"], user["role"], user["status"]) == (handle.lower(), "user", "active")
            assert {"id", "displayName", "createdAt"} <= set(user)

            again = await _call(
                w, None, "POST", "/auth/register", {"handle": handle.lower(), "password": PASSWORD}
            )
            _envelope(again, 409, "handle_taken")
            for bad in ({"handle": "ab", "password": PASSWORD}, {"handle": w.name("p"), "password": "short"}):
                answer = await _call(w, None, "POST", "/auth/register", bad)
                assert answer.status == 422, answer
                assert answer.json["error"]["code"], answer
            shown = await _call(
                w,
                None,
                "POST",
                "/auth/register",
                {"handle": w.name("dn"), "password": PASSWORD, "displayName": "a\x07b"},
            )
            _envelope(shown, 422, "invalid_display_name")

            login = await _call(w, None, "POST", "/auth/login", {"handle": handle, "password": PASSWORD})
            assert login.status == 200, login
            me = await w.http.call("GET", "/users/me", token=login.json["accessToken"])
            assert me.status == 200
            assert (me.json["id"], me.json["handle"]) == (user["id"], handle.lower())

    run(scenario)


def test_wrong_password_and_unknown_handle_get_the_same_401(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            user = await w.user()
            wrong = await _call(
                w, None, "POST", "/auth/login", {"handle": user.handle, "password": "not-the-password"}
            )
            unknown = await _call(
                w, None, "POST", "/auth/login", {"handle": w.name("nobody"), "password": PASSWORD}
            )
            assert _envelope(wrong, 401, "invalid_credentials") == _envelope(
                unknown, 401, "invalid_credentials"
            )

    run(scenario)


def test_refresh_rotates_and_a_replayed_refresh_token_revokes_the_family(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            user = await w.user()
            first = user.api.tokens
            assert first is not None
            assert first.refresh_token is not None
            rotated = await _call(w, None, "POST", "/auth/refresh", {"refreshToken": first.refresh_token})
            assert rotated.status == 200, rotated
            second = rotated.json["refreshToken"]
            assert second != first.refresh_token
            replay = await _call(w, None, "POST", "/auth/refresh", {"refreshToken": first.refresh_token})
            _envelope(replay, 401, "invalid_refresh_token")
            # theft detected: the whole family is revoked, the newer token too
            stolen = await _call(w, None, "POST", "/auth/refresh", {"refreshToken": second})
            _envelope(stolen, 401, "invalid_refresh_token")

    run(scenario)


def test_logout_revokes_its_family_idempotently_and_logout_everywhere_voids_access_tokens(
    e2e_target: Target,
) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            user = await w.user()
            laptop = await w.device(user)
            tokens = user.api.tokens
            assert tokens is not None
            body = {"refreshToken": tokens.refresh_token}
            assert (await _call(w, None, "POST", "/auth/logout", body)).status == 204
            assert (await _call(w, None, "POST", "/auth/logout", body)).status == 204  # idempotent
            _envelope(await _call(w, None, "POST", "/auth/refresh", body), 401, "invalid_refresh_token")
            assert (await _call(w, laptop, "GET", "/users/me")).status == 200  # other devices untouched

            unknown = await _call(
                w, None, "POST", "/auth/logout?all=true", {"refreshToken": "rt_" + "1" * 43}
            )
            assert unknown.status == 401, unknown

            laptop_tokens = laptop.api.tokens
            assert laptop_tokens is not None
            old_access = laptop_tokens.access_token
            everywhere = await _call(
                w, None, "POST", "/auth/logout?all=true", {"refreshToken": laptop_tokens.refresh_token}
            )
            assert everywhere.status == 204
            after = await w.http.call("GET", "/users/me", token=old_access)
            _envelope(after, 401, "token_revoked")

    run(scenario)


# --- the error envelope, content types, CORS --------------------------------------------------------


def test_bodies_that_are_not_json_or_not_valid_get_the_documented_errors(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            user = await w.user()
            token = await user.token()
            json_type = {"Content-Type": "application/json"}
            broken = await w.http.call("POST", "/rooms", data="{not json", headers=json_type, token=token)
            _envelope(broken, 400, "malformed_json")
            secret = "hunter2-" + uuid.uuid4().hex
            form = await w.http.call(
                "POST",
                "/auth/login",
                data=f"handle={user.handle}&password={secret}",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            _envelope(form, 415, "unsupported_media_type")
            assert secret not in form.text
            invalid = await w.http.call(
                "POST", "/rooms", json_body={"name": "x", "kind": "public", "colour": secret}, token=token
            )
            error = _envelope(invalid, 422, "invalid")
            assert error["details"]["fields"], error
            assert {"loc", "type", "message"} <= set(error["details"]["fields"][0])
            assert secret not in invalid.text  # input values are never echoed

    run(scenario)


def test_cors_preflight_and_error_answers_carry_cors_headers(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            origin = {"Origin": "https://app.example.com"}
            pre = await w.http.call(
                "OPTIONS",
                "/rooms",
                headers={
                    **origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type",
                },
            )
            assert pre.status in (200, 204), pre
            assert pre.headers.get("Access-Control-Allow-Origin") in ("*", origin["Origin"]), pre.headers
            refused = await w.http.call("POST", "/auth/login", json_body={"handle": "x"}, headers=origin)
            assert refused.status == 422
            assert refused.headers.get("Access-Control-Allow-Origin") in ("*", origin["Origin"])

    run(scenario)


# --- rooms, members, DMs ----------------------------------------------------------------------------


def test_rooms_create_list_get_join_leave_and_their_errors(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, bob = await w.user("alice"), await w.user("bob")
            name = w.name("room")
            created = await _call(w, alice, "POST", "/rooms", {"name": name, "kind": "public", "topic": "t"})
            assert created.status == 201, created
            room = created.json
            assert (room["name"], room["kind"], room["topic"], room["role"], room["isMember"]) == (
                name,
                "public",
                "t",
                "owner",
                True,
            )
            _envelope(
                await _call(w, bob, "POST", "/rooms", {"name": name, "kind": "public"}), 409, "name_taken"
            )

            mine = await _call(w, alice, "GET", "/rooms")
            assert room["id"] in {r["id"] for r in mine.json["rooms"]}
            assert "nextCursor" in mine.json
            public = await _call(w, bob, "GET", "/rooms", query={"scope": "public", "limit": "100"})
            assert public.status == 200
            assert (await _call(w, bob, "GET", "/rooms", query={"limit": "101"})).status == 422

            _envelope(await _call(w, bob, "GET", f"/rooms/{uuid.uuid4()}"), 404, "room_not_found")
            joined = await _call(w, bob, "POST", f"/rooms/{room['id']}/join")
            assert (joined.status, joined.json["isMember"]) == (200, True)
            _envelope(await _call(w, bob, "POST", f"/rooms/{room['id']}/join"), 409, "already_member")
            assert (await _call(w, bob, "POST", f"/rooms/{room['id']}/leave")).status == 204

            private = await _call(w, alice, "POST", "/rooms", {"name": w.name("priv"), "kind": "private"})
            pid = private.json["id"]
            _envelope(await _call(w, bob, "GET", f"/rooms/{pid}"), 404, "room_not_found")
            _envelope(await _call(w, bob, "POST", f"/rooms/{pid}/join"), 404, "room_not_found")

    run(scenario)


def test_members_are_managed_by_the_owner_only(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, bob, carol = await w.user("alice"), await w.user("bob"), await w.user("carol")
            room = await w.room(alice, kind="private")
            added = await _call(w, alice, "POST", f"/rooms/{room}/members", {"handle": bob.handle})
            assert added.status == 201, added
            assert added.json == {
                "roomId": room,
                "userId": bob.id,
                "handle": bob.handle,
                "role": added.json["role"],
            }
            by_id = await _call(w, alice, "POST", f"/rooms/{room}/members", {"userId": carol.id})
            assert by_id.status == 201
            _envelope(
                await _call(w, bob, "POST", f"/rooms/{room}/members", {"handle": alice.handle}),
                403,
                "not_owner",
            )
            _envelope(
                await _call(w, alice, "POST", f"/rooms/{room}/members", {"handle": w.name("ghost")}),
                404,
                "user_not_found",
            )
            assert (await _call(w, alice, "DELETE", f"/rooms/{room}/members/{carol.id}")).status == 204
            _envelope(await _call(w, carol, "GET", f"/rooms/{room}"), 404, "room_not_found")

    run(scenario)


def test_a_dm_is_created_once_and_never_with_oneself(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, bob = await w.user("alice"), await w.user("bob")
            first = await _call(w, alice, "POST", "/dms", {"handle": bob.handle})
            assert first.status == 201, first
            assert (first.json["kind"], first.json["peer"]["id"]) == ("dm", bob.id)
            again = await _call(w, bob, "POST", "/dms", {"userId": alice.id})
            assert (again.status, again.json["id"]) == (200, first.json["id"])
            _envelope(await _call(w, alice, "POST", "/dms", {"userId": alice.id}), 422, "dm_self")

    run(scenario)


# --- history, edits, deletes, read positions --------------------------------------------------------


def test_history_pages_and_http_edit_delete_read(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, bob = await w.user("alice"), await w.user("bob")
            room = await w.room(alice, bob)
            sock = await alice.socket()
            for i in range(5):
                ack = await sock.request(
                    {"action": "sendMessage", "roomId": room, "clientMessageId": f"h-{i}", "body": f"m{i}"}
                )
                assert ack["type"] == "ack"

            newest = (await _call(w, bob, "GET", f"/rooms/{room}/messages", query={"limit": "2"})).json
            assert ([m["seq"] for m in newest["messages"]], newest["lastSeq"]) == ([4, 5], 5)
            assert (newest["prevCursor"], newest["nextCursor"]) == (4, None)
            older = await _call(w, bob, "GET", f"/rooms/{room}/messages", query={"before": "4", "limit": "2"})
            assert [m["seq"] for m in older.json["messages"]] == [2, 3]
            newer = await _call(w, bob, "GET", f"/rooms/{room}/messages", query={"after": "3"})
            assert [m["seq"] for m in newer.json["messages"]] == [4, 5]
            stranger = await w.user("carol")
            refused = await _call(w, stranger, "GET", f"/rooms/{room}/messages")
            assert refused.status in (403, 404), refused

            edited = await _call(w, alice, "PATCH", f"/rooms/{room}/messages/1", {"body": "m0!"})
            assert (edited.status, edited.json["body"]) == (200, "m0!")
            assert edited.json["editedAt"] is not None
            _envelope(
                await _call(w, bob, "PATCH", f"/rooms/{room}/messages/1", {"body": "no"}), 403, "not_author"
            )
            gone = await _call(w, alice, "DELETE", f"/rooms/{room}/messages/1")
            assert (gone.status, gone.json["body"], gone.json["seq"]) == (200, None, 1)
            _envelope(
                await _call(w, alice, "PATCH", f"/rooms/{room}/messages/1", {"body": "x"}),
                409,
                "message_deleted",
            )

            read = await _call(w, bob, "POST", f"/rooms/{room}/read", {"seq": 3})
            assert read.json == {"roomId": room, "lastReadSeq": 3}
            view = (await _call(w, bob, "GET", f"/rooms/{room}")).json
            assert (view["lastReadSeq"], view["unread"], view["lastSeq"]) == (3, 2, 5)

    run(scenario)


def test_a_password_change_voids_every_other_token_and_returns_a_fresh_pair(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            user = await w.user()
            laptop = await w.device(user)
            laptop_tokens = laptop.api.tokens
            assert laptop_tokens is not None
            wrong = await _call(
                w, user, "POST", "/auth/password", {"currentPassword": "not it", "newPassword": "n3w secret!"}
            )
            _envelope(wrong, 401, "invalid_credentials")
            weak = await _call(
                w, user, "POST", "/auth/password", {"currentPassword": PASSWORD, "newPassword": "short"}
            )
            assert weak.status == 422, weak
            assert PASSWORD not in str(weak.json)
            changed = await _call(
                w, user, "POST", "/auth/password", {"currentPassword": PASSWORD, "newPassword": "n3w secret!"}
            )
            assert changed.status == 200, changed
            assert set(changed.json) >= {"accessToken", "refreshToken", "user"}
            after = await w.http.call("GET", "/users/me", token=laptop_tokens.access_token)
            _envelope(after, 401, "token_revoked")
            refresh = await _call(
                w, None, "POST", "/auth/refresh", {"refreshToken": laptop_tokens.refresh_token}
            )
            _envelope(refresh, 401, "invalid_refresh_token")
            me = await w.http.call("GET", "/users/me", token=changed.json["accessToken"])
            assert me.status == 200, me

    run(scenario)


# --- admin routes -----------------------------------------------------------------------------------


def test_admin_routes_refuse_a_non_admin(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            user, other = await w.user(), await w.user()
            for method, path in (
                ("POST", f"/admin/users/{other.id}/ban"),
                ("POST", f"/admin/users/{other.id}/unban"),
                ("DELETE", f"/admin/users/{other.id}"),
                ("GET", "/admin/analytics"),
            ):
                answer = await _call(w, user, method, path)
                assert answer.status == 403, (path, answer)
                assert answer.error_code is not None

    run(scenario)


def test_admin_analytics_reports_usage(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            admin = await w.admin()
            if admin is None:
                pytest.skip("operator check: set TARGET_ADMIN_TOKEN (an administrator's access token)")
            try:
                figures = await admin.request("GET", "/admin/analytics")
            except ApiError as exc:  # pragma: no cover - reported as the failure
                raise AssertionError(f"analytics refused: {exc}") from exc
            assert isinstance(figures, dict)
            assert figures, figures
            assert isinstance(admin, HttpApi)

    run(scenario)
