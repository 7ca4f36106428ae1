"""Rooms routes through the real http_api handler, behind the real authorizer (API GW v2 events)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import psycopg

from chatflow.domain.messages import MessageService
from tests.support.apigw import HttpApiClient
from tests.support.rooms import ApiUser, set_status

DB = psycopg.Connection[dict[str, Any]]


MakeApiUser = Callable[..., ApiUser]


def _name() -> str:
    return f"room-{uuid4().hex[:10]}"


def test_create_get_and_list_rooms(make_api_user: MakeApiUser) -> None:
    alice = make_api_user()
    created = alice.post("/rooms", json={"kind": "public", "name": _name(), "topic": "chit chat"})
    assert created.status == 201, created.body
    room = created.json
    assert room["kind"] == "public"
    assert room["role"] == "owner"
    assert room["isMember"] is True
    assert room["memberCount"] == 1
    assert room["unread"] == 0
    got = alice.get(f"/rooms/{room['id']}")
    assert got.status == 200
    assert got.json["topic"] == "chit chat"
    mine = alice.get("/rooms")
    assert mine.status == 200
    assert [r["id"] for r in mine.json["rooms"]] == [room["id"]]


def test_create_room_validation_and_conflict(make_api_user: MakeApiUser) -> None:
    alice = make_api_user()
    name = _name()
    assert alice.post("/rooms", json={"kind": "public", "name": name}).status == 201
    dup = alice.post("/rooms", json={"kind": "public", "name": name.upper()})
    assert dup.status == 409
    assert dup.json["error"]["code"] == "name_taken"
    for bad in (
        {"kind": "dm", "name": "x"},
        {"kind": "public"},
        {"kind": "public", "name": ""},
        {"kind": "public", "name": "   "},
        {"kind": "public", "name": "ok", "extra": 1},
        {"kind": "public", "name": "x" * 81},
    ):
        response = alice.post("/rooms", json=bad)
        assert response.status == 422, (bad, response.body)
        assert set(response.json["error"]) >= {"code", "message"}


def test_unauthenticated_is_refused_by_the_gateway(rooms_api: HttpApiClient) -> None:
    assert rooms_api.get("/rooms").status == 401


def test_bad_ids_are_422(make_api_user: MakeApiUser) -> None:
    alice = make_api_user()
    assert alice.get("/rooms/not-a-uuid").status == 422
    assert alice.post("/rooms/123/join").status == 422
    assert alice.delete(f"/rooms/{uuid4()}/members/nope").status == 422
    assert alice.get(f"/rooms/{uuid4()}").status == 404


def test_public_private_visibility_and_join(make_api_user: MakeApiUser) -> None:
    alice, bob = make_api_user(), make_api_user()
    public = alice.post("/rooms", json={"kind": "public", "name": _name()}).json
    private = alice.post("/rooms", json={"kind": "private", "name": _name()}).json
    seen = bob.get(f"/rooms/{public['id']}")
    assert seen.status == 200
    assert seen.json["isMember"] is False
    assert bob.get(f"/rooms/{private['id']}").status == 404
    assert bob.post(f"/rooms/{private['id']}/join").status == 404
    joined = bob.post(f"/rooms/{public['id']}/join")
    assert joined.status == 200
    assert joined.json["role"] == "member"
    assert joined.json["memberCount"] == 2
    again = bob.post(f"/rooms/{public['id']}/join")
    assert again.status == 409
    assert again.json["error"]["code"] == "already_member"
    # The session's database holds every public room other tests (and the API fuzzer) created:
    # walk the listing's pages rather than expect the new room on the first one.
    listed: list[str] = []
    query = {"scope": "public", "limit": "100"}
    for _ in range(200):  # bounded: 20,000 rooms
        page = bob.get("/rooms", query=query).json
        listed += [r["id"] for r in page["rooms"]]
        if not page["nextCursor"]:
            break
        query = {**query, "cursor": page["nextCursor"]}
    assert public["id"] in listed
    assert private["id"] not in listed


def test_leave_hands_ownership_to_oldest_member_and_last_cannot_leave(make_api_user: MakeApiUser) -> None:
    alice, bob, carol = make_api_user(), make_api_user(), make_api_user()
    room = alice.post("/rooms", json={"kind": "public", "name": _name()}).json
    assert bob.post(f"/rooms/{room['id']}/join").status == 200
    assert carol.post(f"/rooms/{room['id']}/join").status == 200
    assert alice.post(f"/rooms/{room['id']}/leave").status == 204
    assert bob.get(f"/rooms/{room['id']}").json["role"] == "owner"
    assert carol.get(f"/rooms/{room['id']}").json["role"] == "member"
    assert alice.post(f"/rooms/{room['id']}/leave").json["error"]["code"] == "not_a_member"
    assert carol.post(f"/rooms/{room['id']}/leave").status == 204
    last = bob.post(f"/rooms/{room['id']}/leave")
    assert last.status == 409
    assert last.json["error"]["code"] == "last_member"


def test_owner_invites_and_removes_members(make_api_user: MakeApiUser) -> None:
    alice, bob, carol = make_api_user(), make_api_user(), make_api_user()
    room = alice.post("/rooms", json={"kind": "private", "name": _name()}).json
    added = alice.post(f"/rooms/{room['id']}/members", json={"handle": "@" + bob.identity.handle.upper()})
    assert added.status == 201, added.body
    assert added.json["userId"] == bob.id
    assert bob.get(f"/rooms/{room['id']}").status == 200
    assert bob.get(f"/rooms/{room['id']}/messages").status == 200
    # Not the owner: 403 for a member; the private room stays invisible to outsiders.
    assert bob.post(f"/rooms/{room['id']}/members", json={"userId": carol.id}).status == 403
    assert carol.post(f"/rooms/{room['id']}/members", json={"userId": bob.id}).status == 404
    assert alice.post(f"/rooms/{room['id']}/members", json={"userId": bob.id}).status == 409
    assert alice.post(f"/rooms/{room['id']}/members", json={"userId": str(uuid4())}).status == 404
    assert alice.post(f"/rooms/{room['id']}/members", json={}).status == 422
    assert alice.post(f"/rooms/{room['id']}/members", json={"userId": bob.id, "handle": "x"}).status == 422
    # Removal: access ends with the next request (the cache was filled above).
    assert alice.delete(f"/rooms/{room['id']}/members/{bob.id}").status == 204
    assert bob.get(f"/rooms/{room['id']}").status == 404
    assert bob.get(f"/rooms/{room['id']}/messages").status == 404
    assert alice.delete(f"/rooms/{room['id']}/members/{bob.id}").status == 404
    assert alice.delete(f"/rooms/{room['id']}/members/{alice.id}").status == 422


def test_removed_member_of_public_room_gets_403(make_api_user: MakeApiUser) -> None:
    alice, bob = make_api_user(), make_api_user()
    room = alice.post("/rooms", json={"kind": "public", "name": _name()}).json
    bob.post(f"/rooms/{room['id']}/join")
    assert bob.get(f"/rooms/{room['id']}/messages").status == 200
    assert alice.delete(f"/rooms/{room['id']}/members/{bob.id}").status == 204
    refused = bob.get(f"/rooms/{room['id']}/messages")
    assert refused.status == 403
    assert refused.json["error"]["code"] == "not_a_member"


def test_invite_banned_user_is_refused(make_api_user: MakeApiUser, db: DB) -> None:
    alice, banned = make_api_user(), make_api_user()
    set_status(db, banned.identity.user_id, "banned")
    room = alice.post("/rooms", json={"kind": "private", "name": _name()}).json
    response = alice.post(f"/rooms/{room['id']}/members", json={"userId": banned.id})
    assert response.status == 403
    assert response.json["error"]["code"] == "user_banned"


def test_dm_create_or_get(make_api_user: MakeApiUser, db: DB) -> None:
    alice, bob = make_api_user(), make_api_user()
    first = alice.post("/dms", json={"userId": bob.id})
    assert first.status == 201, first.body
    dm = first.json
    assert dm["kind"] == "dm"
    assert dm["memberCount"] == 2
    assert dm["peer"]["id"] == bob.id
    again = bob.post("/dms", json={"handle": alice.identity.handle})
    assert again.status == 200
    assert again.json["id"] == dm["id"]
    assert again.json["peer"]["id"] == alice.id
    assert alice.post("/dms", json={"userId": alice.id}).status == 422
    assert alice.post("/dms", json={"userId": str(uuid4())}).status == 404
    # DMs cannot be joined, left or invited to.
    carol = make_api_user()
    assert carol.post(f"/rooms/{dm['id']}/join").status == 404
    assert alice.post(f"/rooms/{dm['id']}/leave").status == 403
    assert alice.post(f"/rooms/{dm['id']}/members", json={"userId": carol.id}).status == 403
    deleted = make_api_user()
    set_status(db, deleted.identity.user_id, "deleted")
    assert alice.post("/dms", json={"userId": deleted.id}).status == 404


def test_list_my_rooms_paginates_with_unread_counts(
    messages: MessageService, make_api_user: MakeApiUser
) -> None:
    alice, bob = make_api_user(), make_api_user()
    ids = [alice.post("/rooms", json={"kind": "public", "name": _name()}).json["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = alice.get("/rooms", query=query)
        assert page.status == 200
        assert len(page.json["rooms"]) <= 2
        seen += [r["id"] for r in page.json["rooms"]]
        cursor = page.json["nextCursor"]
        if cursor is None:
            break
    assert seen == ids
    assert alice.get("/rooms", query={"cursor": "garbage!"}).status == 422
    assert alice.get("/rooms", query={"limit": "0"}).status == 422
    assert alice.get("/rooms", query={"scope": "everything"}).status == 422

    # Unread = last_seq - last_read_seq; the sender's own messages count as read.
    room_id = UUID(ids[0])
    bob.post(f"/rooms/{room_id}/join")
    for i in range(3):
        messages.send(alice.identity, room_id, f"u-{i}", f"message {i}")
    assert bob.get("/rooms").json["rooms"][0]["unread"] == 3
    assert alice.get(f"/rooms/{room_id}").json["unread"] == 0
    assert messages.mark_read(bob.identity, room_id, 2) == 2
    assert bob.get(f"/rooms/{room_id}").json["unread"] == 1


def test_a_name_conflict_never_reveals_a_private_room(make_api_user: MakeApiUser) -> None:
    """Public names are unique among public rooms; private ones only among their creator's
    private rooms: nobody learns from a 409 that someone else's private room has that name."""
    alice, bob = make_api_user(), make_api_user()
    secret = _name()
    assert alice.post("/rooms", json={"kind": "private", "name": secret}).status == 201
    # Bob may use the name, privately or publicly: no 409 tells him it exists.
    assert bob.post("/rooms", json={"kind": "private", "name": secret.upper()}).status == 201
    assert bob.post("/rooms", json={"kind": "public", "name": secret}).status == 201
    # Alice herself knows her rooms: a second private one of that name is refused, for her only.
    again = alice.post("/rooms", json={"kind": "private", "name": secret})
    assert again.status == 409
    assert again.json["error"]["code"] == "name_taken"
    # The public name is now taken for everyone (public names are listed to everyone anyway).
    clash = alice.post("/rooms", json={"kind": "public", "name": secret.upper()})
    assert clash.status == 409
    assert clash.json["error"]["code"] == "name_taken"
