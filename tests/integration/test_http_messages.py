"""Message routes (history, edit, delete) through the real authorizer + http_api handler."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import pytest

from chatflow.domain.messages import MessageService
from chatflow.domain.rooms import RoomService
from tests.support.rooms import MESSAGE_KEYS, ApiUser

Room = tuple[UUID, ApiUser, ApiUser]
MakeApiUser = Callable[..., ApiUser]


@pytest.fixture
def room(rooms: RoomService, messages: MessageService, make_api_user: MakeApiUser) -> Room:
    """A public room with 12 messages by its owner and one more member."""
    owner, member = make_api_user(), make_api_user()
    room_id = rooms.create_channel(owner.identity, "public", f"m-{uuid4().hex[:8]}").room.id
    rooms.join(member.identity, room_id)
    for i in range(1, 13):
        messages.send(owner.identity, room_id, f"seed-{i}", f"message {i}")
    return room_id, owner, member


def test_history_pages_with_cursors(room: Room) -> None:
    room_id, _, member = room
    latest = member("GET", f"/rooms/{room_id}/messages", query={"limit": "5"})
    assert latest.status == 200, latest.body
    body = latest.json
    assert [m["seq"] for m in body["messages"]] == [8, 9, 10, 11, 12]
    assert body["lastSeq"] == 12
    assert body["prevCursor"] == 8
    assert body["nextCursor"] is None
    first = body["messages"][0]
    assert set(first) == MESSAGE_KEYS
    older = member("GET", f"/rooms/{room_id}/messages", query={"before": "8", "limit": "5"}).json
    assert [m["seq"] for m in older["messages"]] == [3, 4, 5, 6, 7]
    newer = member("GET", f"/rooms/{room_id}/messages", query={"after": "10"}).json
    assert [m["seq"] for m in newer["messages"]] == [11, 12]
    assert newer["nextCursor"] is None


@pytest.mark.parametrize(
    "query",
    [{"limit": "0"}, {"limit": "abc"}, {"before": "0"}, {"after": "-1"}, {"after": "5", "before": "3"}],
)
def test_history_bad_query_is_422(room: Room, query: dict[str, str]) -> None:
    room_id, _, member = room
    response = member("GET", f"/rooms/{room_id}/messages", query=query)
    assert response.status == 422, response.body
    assert "code" in response.json["error"]


def test_history_authorization(rooms: RoomService, make_api_user: MakeApiUser, room: Room) -> None:
    room_id, owner, _ = room
    stranger = make_api_user()
    assert stranger("GET", f"/rooms/{room_id}/messages").status == 403
    private = rooms.create_channel(owner.identity, "private", f"p-{uuid4().hex[:8]}").room.id
    assert stranger("GET", f"/rooms/{private}/messages").status == 404
    assert stranger("GET", f"/rooms/{uuid4()}/messages").status == 404
    assert stranger("GET", "/rooms/xyz/messages").status == 422


def test_edit_author_only(room: Room) -> None:
    room_id, owner, member = room
    denied = member("PATCH", f"/rooms/{room_id}/messages/3", json={"body": "not mine"})
    assert denied.status == 403
    assert denied.json["error"]["code"] == "not_author"
    edited = owner("PATCH", f"/rooms/{room_id}/messages/3", json={"body": "edited"})
    assert edited.status == 200, edited.body
    assert edited.json["body"] == "edited"
    assert edited.json["editedAt"] is not None
    seen = member("GET", f"/rooms/{room_id}/messages", query={"after": "2", "limit": "1"}).json
    assert seen["messages"][0]["body"] == "edited"
    assert owner("PATCH", f"/rooms/{room_id}/messages/99", json={"body": "x"}).status == 404
    assert owner("PATCH", f"/rooms/{room_id}/messages/zero", json={"body": "x"}).status == 422
    assert owner("PATCH", f"/rooms/{room_id}/messages/0", json={"body": "x"}).status == 422
    assert owner("PATCH", f"/rooms/{room_id}/messages/3", json={"body": ""}).status == 422
    assert owner("PATCH", f"/rooms/{room_id}/messages/3", json={"body": "x" * 5000}).status == 422
    assert owner("PATCH", f"/rooms/{room_id}/messages/3", json={"text": "x"}).status == 422
    json_type = {"content-type": "application/json"}
    assert owner("PATCH", f"/rooms/{room_id}/messages/3", body="{not json", headers=json_type).status == 400


def test_delete_author_or_admin(make_api_user: MakeApiUser, room: Room) -> None:
    room_id, owner, member = room
    admin = make_api_user(role="admin")
    assert member("DELETE", f"/rooms/{room_id}/messages/4").status == 403
    gone = owner("DELETE", f"/rooms/{room_id}/messages/4")
    assert gone.status == 200
    assert gone.json["body"] is None
    assert gone.json["deletedAt"] is not None
    by_admin = admin("DELETE", f"/rooms/{room_id}/messages/5")
    assert by_admin.status == 200
    assert by_admin.json["body"] is None
    page = member("GET", f"/rooms/{room_id}/messages", query={"after": "3", "limit": "3"}).json
    assert [m["body"] for m in page["messages"]] == [None, None, "message 6"]
    assert owner("PATCH", f"/rooms/{room_id}/messages/4", json={"body": "back"}).status == 409
    assert admin("DELETE", f"/rooms/{uuid4()}/messages/1").status == 404


def test_banned_users_token_stops_working(make_api_user: MakeApiUser, room: Room) -> None:
    room_id, _, member = room
    admin = make_api_user(role="admin")
    assert member("GET", f"/rooms/{room_id}/messages").status == 200
    banned = admin("POST", f"/admin/users/{member.identity.user_id}/ban")
    assert banned.status in (200, 204), banned.body
    assert member("GET", f"/rooms/{room_id}/messages").status == 401


def test_mark_read_route(make_api_user: MakeApiUser, room: Room) -> None:
    room_id, _, member = room
    assert member("GET", f"/rooms/{room_id}").json["unread"] == 12
    moved = member("POST", f"/rooms/{room_id}/read", json={"seq": 7})
    assert moved.status == 200, moved.body
    assert moved.json == {"roomId": str(room_id), "lastReadSeq": 7}
    assert member("POST", f"/rooms/{room_id}/read", json={"seq": 3}).json["lastReadSeq"] == 7
    assert member("POST", f"/rooms/{room_id}/read", json={"seq": 500}).json["lastReadSeq"] == 12
    assert member("GET", f"/rooms/{room_id}").json["unread"] == 0
    assert member("POST", f"/rooms/{room_id}/read", json={"seq": -1}).status == 422
    assert member("POST", f"/rooms/{room_id}/read", json={}).status == 422
    stranger = make_api_user()
    assert stranger("POST", f"/rooms/{room_id}/read", json={"seq": 1}).status == 403
