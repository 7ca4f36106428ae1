"""A connection receives only while its session is valid (docs/auth.md, "Revocation").

Real handlers, real Postgres + Redis, the local @connections endpoint (tests/support/ws_harness.py):
every revocation path closes the user's sockets and empties their registry entries; fan-out skips
a revoked session even when DeleteConnection failed or a registration raced the revocation;
``ping`` and ``$connect`` check the account around (re-)registering; a 410 within the grace
window after registration does not unregister a brand-new connection.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from chatflow.adapters.redis_realtime import RedisRealtimeStore
from chatflow.domain.identity import Identity
from chatflow.domain.realtime import RealtimeService
from chatflow.domain.realtime_models import Target
from chatflow.domain.rooms import RoomService
from chatflow.domain.user_models import UserStatus
from tests.support.apigw import http_event, lambda_context
from tests.support.lambdas import load_handler
from tests.support.rooms import insert_user
from tests.support.ws_harness import WsHarness, ws_harness

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def ws(chatflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[WsHarness]:
    with ws_harness(monkeypatch) as harness:
        yield harness


def _http(method: str, path: str, *, identity: Identity | None = None, **kw: Any) -> dict[str, Any]:
    ctx = {k: str(v) for k, v in identity.to_context().items()} if identity else None
    event = http_event(method, path, authorizer_context=ctx, **kw)
    response: dict[str, Any] = load_handler("http_api")(event, lambda_context("http_api"))
    return response


def _registered_user(ws: WsHarness) -> tuple[Identity, str]:
    """A user registered through the HTTP API: their identity (from the access token, as the
    authorizer builds it) and their refresh token."""
    handle = f"r{uuid4().hex[:10]}"
    response = _http("POST", "/auth/register", json={"handle": handle, "password": "correct-horse-battery"})
    assert response["statusCode"] == 201, response
    pair = json.loads(response["body"])
    return ws.container.token_verifier.verify(pair["accessToken"]), pair["refreshToken"]


def _after_issue(identity: Identity) -> None:
    """Revocations void tokens with ``iat < tokens_valid_after``: let the clock pass the token's
    whole-second ``iat`` so a revocation right now is strictly after it."""
    while time.time() <= identity.issued_at + 0.01:
        time.sleep(0.05)


def _say(ws: WsHarness, cid: str, room: UUID, text: str) -> None:
    reply = ws.send(
        cid, {"action": "sendMessage", "roomId": str(room), "clientMessageId": uuid4().hex, "body": text}
    )
    assert reply["type"] == "ack", reply


def _room_with(rooms: RoomService, owner: Identity, *members: Identity) -> UUID:
    room = rooms.create_channel(owner, "public", f"rv-{uuid4().hex[:8]}").room
    for member in members:
        rooms.join(member, room.id)
    return room.id


def _assert_cut_off(ws: WsHarness, user: Identity, sockets: list[str], friend_cid: str, room: UUID) -> None:
    """Every socket of ``user`` closed and unregistered, deaf to the room, and a token issued
    before the revocation refused at $connect."""
    assert all(ws.backend.closed_by_api(cid) for cid in sockets)
    assert _registry(ws).connections_of([user.user_id]) == []
    ws.clear()
    _say(ws, friend_cid, room, "after the revocation")
    assert all(ws.received(cid, "message") == [] for cid in sockets)
    _, refused = ws.connect(user)  # its token was issued before the revocation
    assert refused["statusCode"] == 403


def _registry(ws: WsHarness) -> RedisRealtimeStore:
    return ws.container.connection_registry


# --- every revocation path closes the sockets and empties the registry ------------------------


def test_logout_everywhere_closes_the_users_live_sockets(ws: WsHarness, rooms: RoomService, db: DB) -> None:
    user, refresh = _registered_user(ws)
    friend = insert_user(db)
    room = _room_with(rooms, friend, user)
    sockets = [ws.connected(user) for _ in range(2)]
    friend_cid = ws.connected(friend)
    _after_issue(user)

    response = _http("POST", "/auth/logout", json={"refreshToken": refresh}, query={"all": "true"})
    assert response["statusCode"] == 204, response

    _assert_cut_off(ws, user, sockets, friend_cid, room)


def test_a_password_change_closes_every_live_socket_of_the_user(
    ws: WsHarness, rooms: RoomService, db: DB
) -> None:
    user, _ = _registered_user(ws)
    friend = insert_user(db)
    room = _room_with(rooms, friend, user)
    sockets = [ws.connected(user) for _ in range(2)]
    friend_cid = ws.connected(friend)
    _after_issue(user)

    response = _http(
        "POST",
        "/auth/password",
        identity=user,
        json={"currentPassword": "correct-horse-battery", "newPassword": "a brand new secret"},
    )
    assert response["statusCode"] == 200, response
    fresh = json.loads(response["body"])

    _assert_cut_off(ws, user, sockets, friend_cid, room)
    # The caller's new pair connects and hears the room again.
    cid = ws.connected(ws.container.token_verifier.verify(fresh["accessToken"]))
    ws.clear()
    _say(ws, friend_cid, room, "welcome back")
    assert [f["message"]["body"] for f in ws.received(cid, "message")] == ["welcome back"]


def test_an_http_admin_delete_closes_the_users_live_sockets(
    ws: WsHarness, rooms: RoomService, db: DB
) -> None:
    admin = insert_user(db, role="admin")
    gone, friend = insert_user(db), insert_user(db)
    room = _room_with(rooms, friend, gone)
    sockets = [ws.connected(gone) for _ in range(2)]
    friend_cid = ws.connected(friend)

    response = _http("DELETE", f"/admin/users/{gone.user_id}", identity=admin)
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["sessionsClosed"] == 2
    _assert_cut_off(ws, gone, sockets, friend_cid, room)


def test_logout_of_one_device_leaves_the_other_sessions_alone(ws: WsHarness) -> None:
    user, refresh = _registered_user(ws)
    cid = ws.connected(user)
    response = _http("POST", "/auth/logout", json={"refreshToken": refresh})
    assert response["statusCode"] == 204, response
    assert not ws.backend.closed_by_api(cid)  # only the refresh family is revoked
    assert [t.connection_id for t in _registry(ws).connections_of([user.user_id])] == [cid]


# --- DeleteConnection fails: the socket stays open but hears nothing new ------------------------


def test_a_ban_whose_delete_connection_fails_still_silences_the_socket(
    ws: WsHarness, rooms: RoomService, db: DB
) -> None:
    admin = insert_user(db, role="admin")
    troll, friend = insert_user(db), insert_user(db)
    room = _room_with(rooms, friend, troll)
    troll_cid, friend_cid = ws.connected(troll), ws.connected(friend)
    ws.management.set_fail_deletes(True)

    response = _http("POST", f"/admin/users/{troll.user_id}/ban", identity=admin)
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["sessionsClosed"] == 0  # no DeleteConnection succeeded
    assert not ws.backend.closed_by_api(troll_cid)  # still open at the gateway...
    assert _registry(ws).connections_of([troll.user_id]) == []  # ...but unregistered
    ws.clear()
    _say(ws, friend_cid, room, "after the ban")
    assert ws.received(troll_cid, "message") == []

    # Its ping neither touches nor re-registers it: refused, and (deletes work again) closed.
    ws.management.set_fail_deletes(False)
    pong = ws.send(troll_cid, {"action": "ping"})
    assert (pong["type"], pong["code"]) == ("error", "account_disabled")
    assert _registry(ws).connections_of([troll.user_id]) == []
    assert ws.backend.closed_by_api(troll_cid)
    assert [f["code"] for f in ws.received(troll_cid, "error")] == ["account_disabled"]


def test_any_refused_frame_of_a_revoked_session_closes_it(ws: WsHarness, rooms: RoomService, db: DB) -> None:
    admin = insert_user(db, role="admin")
    troll = insert_user(db)
    room = _room_with(rooms, troll)
    cid = ws.connected(troll)
    ws.management.set_fail_deletes(True)
    _http("POST", f"/admin/users/{troll.user_id}/ban", identity=admin)
    ws.management.set_fail_deletes(False)
    reply = ws.send(cid, {"action": "joinRoom", "roomId": str(room)})
    assert (reply["type"], reply["code"]) == ("error", "account_disabled")
    assert ws.backend.closed_by_api(cid)


# --- fan-out compares the session stamp with the cached status, in the targets' round trip -------


def test_fanout_skips_and_cleans_up_a_registration_that_outlived_its_revocation(
    ws: WsHarness, rooms: RoomService, db: DB
) -> None:
    """A termination that raced a registration (or failed before removing it) leaves a record of a
    revoked session behind: fan-out must not post to it, and removes and closes it."""
    admin = insert_user(db, role="admin")
    troll, friend = insert_user(db), insert_user(db)
    room = _room_with(rooms, friend, troll)
    friend_cid = ws.connected(friend)
    users = ws.container.users
    # The ban commits and writes the status cache, but its termination never runs...
    users.session_terminator = None
    try:
        _after_issue(troll)
        users.ban(admin, troll.user_id)
    finally:
        users.session_terminator = ws.container.session_terminator
    # ...and a registration of the old session lands anyway (the race the stamp is for).
    stale = ws.backend.register(f"stale{uuid4().hex[:6]}=")
    _registry(ws).register(troll.user_id, stale, session_issued_at=troll.issued_at)
    assert _registry(ws).delivery_targets([troll.user_id]).revoked == [Target(troll.user_id, stale)]

    ws.clear()
    _say(ws, friend_cid, room, "not for the troll")
    assert ws.received(stale) == []
    assert ws.backend.closed_by_api(stale)
    assert _registry(ws).delivery_targets([troll.user_id]).revoked == []


def test_delivery_targets_judge_each_session_by_its_stamp(ws: WsHarness, db: DB) -> None:
    """One pipeline: a session issued before tokens_valid_after is revoked, a newer one of the
    same user is not; without a cached status the registry admits (no Postgres per recipient)."""
    store, cache = _registry(ws), ws.container.user_status_cache
    user = insert_user(db)
    old, new, unstamped = "old0000000000=", "new0000000000=", "legacy0000000="
    store.register(user.user_id, old, session_issued_at=1_000.0)
    store.register(user.user_id, new, session_issued_at=2_000.0)
    store.register(user.user_id, unstamped)
    assert {t.connection_id for t in store.delivery_targets([user.user_id]).live} == {old, new, unstamped}

    cache.put(user.user_id, UserStatus("active", 1_500.0, "user", user.handle))
    found = store.delivery_targets([user.user_id])
    assert {t.connection_id for t in found.live} == {new, unstamped}
    assert found.revoked == [Target(user.user_id, old)]
    assert store.connections_of([user.user_id]) == found.live

    cache.put(user.user_id, UserStatus("banned", 1_500.0, "user", user.handle))
    assert store.delivery_targets([user.user_id]).live == []


# --- $connect and ping check the account around (re-)registering -----------------------------


def test_a_ban_landing_between_connect_check_and_registration_is_undone(
    ws: WsHarness, db: DB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$connect checked the account, then registers; the ban commits in between and its
    termination finds nothing yet. The re-check after registering refuses and unregisters."""
    admin = insert_user(db, role="admin")
    troll = insert_user(db)
    _after_issue(troll)
    realtime = ws.container.realtime
    registry = _registry(ws)
    real_register = registry.register
    users = ws.container.users

    def register_then_ban(*args: Any, **kwargs: Any) -> Any:
        registration = real_register(*args, **kwargs)
        users.session_terminator = None  # the ban's termination ran before this registration
        users.ban(admin, troll.user_id)
        return registration

    monkeypatch.setattr(registry, "register", register_then_ban)
    with pytest.raises(Exception) as refused:
        realtime.connect(troll, "race00000000=", recheck=lambda: users.ensure_active(troll))
    assert getattr(refused.value, "code", None) == "account_disabled"
    monkeypatch.setattr(registry, "register", real_register)
    assert registry.connections_of([troll.user_id]) == []
    assert registry.delivery_targets([troll.user_id]).revoked == []


def test_ping_re_registers_an_expired_connection_only_for_a_valid_session(ws: WsHarness, db: DB) -> None:
    user = insert_user(db)
    cid = ws.connected(user)
    registry = _registry(ws)
    registry.unregister(user.user_id, cid)  # the record expired during a long silence
    assert ws.send(cid, {"action": "ping"})["type"] == "pong"
    assert [t.connection_id for t in registry.connections_of([user.user_id])] == [cid]


def test_connect_stamps_the_registration_with_the_token_iat(ws: WsHarness, db: DB) -> None:
    user = insert_user(db)
    cid = ws.connected(user)
    key = registry_key(_registry(ws), user.user_id, cid)
    assert float(ws.container.redis.client.hget(key, "iat") or 0) == user.issued_at


def registry_key(store: RedisRealtimeStore, user_id: UUID, cid: str) -> str:
    return store._conn_prefix(user_id) + cid


# --- a 410 racing $connect does not unregister the brand-new connection -----------------------


def test_a_410_within_the_grace_window_keeps_the_registration(ws: WsHarness, db: DB) -> None:
    user = insert_user(db)
    cid = "connecting00=="  # $connect still running: the gateway answers 410 to posts
    clock = [time.time()]
    store = RedisRealtimeStore(ws.container.redis, ws.container.settings, clock=lambda: clock[0])
    realtime = RealtimeService(
        registry=store, notifier=ws.container.notifier, rooms=ws.container.room_directory, gone_grace_s=10.0
    )
    assert store.register(user.user_id, cid, session_issued_at=user.issued_at).accepted

    report = realtime.deliver([Target(user.user_id, cid)], {"type": "presence"})
    assert report.gone == [Target(user.user_id, cid)]
    assert store.connections_of([user.user_id]) == [Target(user.user_id, cid)]  # kept

    clock[0] += 10.5  # past the grace window: a 410 now means the client is gone
    realtime.deliver([Target(user.user_id, cid)], {"type": "presence"})
    assert store.connections_of([user.user_id]) == []
