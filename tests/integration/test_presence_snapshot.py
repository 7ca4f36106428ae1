"""Presence snapshots (issue 9 §2): the ``joined`` reply, the ``presence`` action and
``GET /rooms/{id}/presence`` list the room's online members with the version of their ``online``
transition -- the number their presence frame carried -- through the real handlers, Postgres,
Redis and the local @connections endpoint (tests/support/ws_harness.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from chatflow.domain.identity import Identity
from chatflow.domain.rooms import RoomService
from tests.support.identity import http_client
from tests.support.lambdas import reset_handlers
from tests.support.rooms import ApiUser, insert_user
from tests.support.ws_harness import WsHarness

DB = psycopg.Connection[dict[str, Any]]


def _online(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["userId"]: e for e in snapshot["online"]}


def _presence(ws: WsHarness, cid: str, room_id: UUID, **extra: Any) -> dict[str, Any]:
    reply: dict[str, Any] = ws.send(cid, {"action": "presence", "roomId": str(room_id), **extra})
    assert reply["type"] == "presenceSnapshot", reply
    return reply


def test_joined_reply_lists_online_members_once_per_user_with_their_frame_versions(
    ws: WsHarness, db: DB, alice: Identity, bob: Identity, room_id: UUID, rooms: RoomService
) -> None:
    carol, outsider = insert_user(db), insert_user(db)
    rooms.join(carol, room_id)  # a member who is offline
    b = ws.connected(bob)
    ws.clear()
    a_phone = ws.connected(alice)
    (online_frame,) = ws.received(b, "presence")
    a_laptop = ws.connected(alice)  # a second device: no new transition
    ws.connected(outsider)  # online, but not in the room

    joined = ws.send(b, {"action": "joinRoom", "roomId": str(room_id), "requestId": "j1"})
    assert (joined["type"], joined["roomId"], joined["requestId"]) == ("joined", str(room_id), "j1")
    snapshot = joined["presence"]
    assert snapshot["roomId"] == str(room_id)
    assert snapshot["more"] is False
    assert "cursor" not in snapshot
    online = _online(snapshot)
    assert set(online) == {str(alice.user_id), str(bob.user_id)}  # not carol, not the outsider
    assert len(snapshot["online"]) == 2  # alice's two devices: one entry
    assert online[str(alice.user_id)] == {
        "userId": str(alice.user_id),
        "handle": alice.handle,
        "status": "online",
        "version": online_frame["version"],  # the version rule: the same number as the frame
    }
    assert online[str(bob.user_id)]["handle"] == bob.handle

    # One device closes: still online, same version. The last one closes: gone from the snapshot,
    # and the offline frame outranks the version the snapshot gave.
    ws.disconnect(a_laptop)
    assert _online(_presence(ws, b, room_id))[str(alice.user_id)]["version"] == online_frame["version"]
    ws.clear()
    ws.disconnect(a_phone)
    (offline,) = ws.received(b, "presence")
    assert offline["status"] == "offline"
    assert offline["version"] > online_frame["version"]
    assert str(alice.user_id) not in _online(_presence(ws, b, room_id))

    # Back online: the snapshot carries the new transition's version, greater than the offline one.
    ws.clear()
    ws.connected(alice)
    (again,) = ws.received(b, "presence")
    assert again["version"] > offline["version"]
    assert _online(_presence(ws, b, room_id))[str(alice.user_id)]["version"] == again["version"]


def test_a_lost_version_key_gets_a_version_later_transitions_outrank(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    b = ws.connected(bob)
    a = ws.connected(alice)
    registry = ws.container.connection_registry
    registry.client.delete(registry._presence_version(alice.user_id))  # evicted / expired
    entry = _online(_presence(ws, b, room_id))[str(alice.user_id)]
    assert entry["version"] > 0
    ws.clear()
    ws.disconnect(a)
    (offline,) = ws.received(b, "presence")
    assert offline["version"] > entry["version"]


def test_snapshots_are_paged_with_a_cursor_and_capped(
    ws: WsHarness, db: DB, alice: Identity, room_id: UUID, rooms: RoomService, monkeypatch: pytest.MonkeyPatch
) -> None:
    others = [insert_user(db) for _ in range(5)]
    for user in others:
        rooms.join(user, room_id)
        ws.connected(user)
    a = ws.connected(alice)
    expected = {str(u.user_id) for u in [*others, alice]}  # bob is offline

    seen: list[str] = []
    page = _presence(ws, a, room_id, limit=2)
    for _ in range(10):  # bounded: 6 online members, 2 per page
        assert len(page["online"]) <= 2
        seen += [e["userId"] for e in page["online"]]
        if not page["more"]:
            break
        page = _presence(ws, a, room_id, limit=2, cursor=page["cursor"])
    assert seen == sorted(expected)  # ordered by user id, each exactly once
    assert page["more"] is False

    # The server's cap wins over a larger limit.
    monkeypatch.setenv("PRESENCE_PAGE_MAX", "4")
    reset_handlers()
    capped = _presence(ws, a, room_id, limit=100)
    assert len(capped["online"]) == 4
    assert capped["more"] is True
    joined = ws.send(a, {"action": "joinRoom", "roomId": str(room_id)})
    assert joined["presence"]["online"] == capped["online"]
    assert joined["presence"]["cursor"] == capped["cursor"] == capped["online"][-1]["userId"]


def test_only_members_get_a_snapshot(
    ws: WsHarness, db: DB, alice: Identity, room_id: UUID, rooms: RoomService
) -> None:
    outsider = insert_user(db)
    o = ws.connected(outsider)
    refused = ws.send(o, {"action": "presence", "roomId": str(room_id), "requestId": "p1"})
    assert (refused["type"], refused["code"], refused["requestId"]) == ("error", "not_a_member", "p1")
    private = rooms.create_channel(alice, "private", f"hidden-{uuid4().hex[:8]}").room
    for room in (private.id, uuid4()):  # private rooms and missing rooms look the same
        refused = ws.send(o, {"action": "presence", "roomId": str(room)})
        assert refused["code"] == "room_not_found"
    bad = ws.send(o, {"action": "presence", "roomId": str(room_id), "cursor": "nope"})
    assert bad["code"] == "invalid_frame"
    assert ws.send(o, {"action": "ping"})["type"] == "pong"  # the connection stays


def test_http_presence_route(
    ws: WsHarness, db: DB, alice: Identity, bob: Identity, room_id: UUID, rooms: RoomService
) -> None:
    api = http_client()
    a_user, b_user, outsider = ApiUser(api, alice), ApiUser(api, bob), ApiUser(api, insert_user(db))
    b = ws.connected(bob)
    ws.clear()
    ws.connected(alice)
    (frame,) = ws.received(b, "presence")

    got = b_user.get(f"/rooms/{room_id}/presence")
    assert got.status == 200, got.body
    assert got.json == {
        "roomId": str(room_id),
        "online": [
            {"userId": str(u.user_id), "handle": u.handle, "status": "online", "version": v}
            for u, v in sorted(
                [(alice, frame["version"]), (bob, _online(got.json)[str(bob.user_id)]["version"])],
                key=lambda p: str(p[0].user_id),
            )
        ],
        "more": False,
        "cursor": None,
    }
    first = a_user.get(f"/rooms/{room_id}/presence", query={"limit": "1"})
    assert first.status == 200
    assert first.json["more"] is True
    rest = a_user.get(f"/rooms/{room_id}/presence", query={"limit": "1", "cursor": first.json["cursor"]})
    assert [e["userId"] for e in first.json["online"] + rest.json["online"]] == [
        e["userId"] for e in got.json["online"]
    ]
    assert rest.json["more"] is False

    # Members only, like the other room routes.
    assert outsider.get(f"/rooms/{room_id}/presence").json["error"]["code"] == "not_a_member"
    assert outsider.get(f"/rooms/{room_id}/presence").status == 403
    private = rooms.create_channel(alice, "private", f"hidden-{uuid4().hex[:8]}").room
    for room in (private.id, uuid4()):
        missing = outsider.get(f"/rooms/{room}/presence")
        assert missing.status == 404
        assert missing.json["error"]["code"] == "room_not_found"
    for bad in ({"cursor": "x"}, {"limit": "0"}, {"limit": "1001"}):
        assert a_user.get(f"/rooms/{room_id}/presence", query=bad).status == 422
    assert a_user.get("/rooms/not-a-uuid/presence").status == 422
    assert api.get(f"/rooms/{room_id}/presence").status == 401

    doc = api.get("/openapi.json").json
    operation = doc["paths"]["/rooms/{room_id}/presence"]["get"]
    # 413/429 are added by the app for every operation (chatflow.http.app.complete_operation).
    assert set(operation["responses"]) == {"200", "401", "403", "404", "413", "422", "429", "503"}
    assert operation["security"] == [{"bearerAuth": []}]
