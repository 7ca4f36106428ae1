"""GET /notifications, POST /notifications/read and GET /admin/analytics through the real
http_api handler behind the real authorizer (API Gateway v2 events); notifications written by the
real notifications function from EventBridge envelopes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
import pytest

from chatflow.adapters.sns_delivery import SnsNotificationChannel
from chatflow.domain.identity import Identity
from chatflow.events.schemas import MessageCreated
from tests.support.apigw import HttpApiClient, HttpResponse, lambda_context
from tests.support.events import envelope, insert_room
from tests.support.identity import http_client
from tests.support.lambdas import load_handler_module, reset_handlers
from tests.support.rooms import access_token, insert_user

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def api(chatflow_env: dict[str, str]) -> Iterator[HttpApiClient]:
    reset_handlers()  # a fresh notifications function whose channel is not configured
    load_handler_module("notifications").container.override(notification_channel=SnsNotificationChannel(None))
    yield http_client()
    reset_handlers()


def _deliver(event: MessageCreated) -> None:
    load_handler_module("notifications").handler(envelope(event), lambda_context("chatflow-notifications"))


def _message(room: UUID, sender: Identity, seq: int, body: str, mentions: list[str] = []) -> MessageCreated:  # noqa: B006
    now = datetime.now(UTC)
    return MessageCreated(
        room_id=room,
        seq=seq,
        message_id=uuid.uuid4(),
        sender_id=sender.user_id,
        sender_handle=sender.handle,
        client_message_id=f"c{seq}-{uuid.uuid4().hex[:6]}",
        body=body,
        mentions=mentions,
        created_at=now,
    )


def _get(api: HttpApiClient, who: Identity, path: str, **query: str) -> HttpResponse:
    return api.get(path, token=access_token(who), query=query or None)


def _post(api: HttpApiClient, who: Identity, body: Any) -> HttpResponse:
    return api.post("/notifications/read", token=access_token(who), json=body)


def test_list_page_and_mark_read(api: HttpApiClient, db: DB) -> None:
    sender = insert_user(db)
    reader = insert_user(db)
    other = insert_user(db)
    room = insert_room(db, sender.user_id, [reader.user_id, other.user_id])
    dm = insert_room(db, sender.user_id, [reader.user_id], kind="dm")
    _deliver(_message(room, sender, 1, "morning all"))
    _deliver(_message(room, sender, 2, f"@{reader.handle} look", [reader.handle]))
    _deliver(_message(dm, sender, 1, "psst"))

    resp = _get(api, reader, "/notifications")
    assert resp.status == 200, resp.body
    body = resp.json
    rooms = {r["roomId"]: (r["unreadMessages"], r["unreadMentions"]) for r in body["rooms"]}
    assert rooms == {str(room): (2, 1), str(dm): (1, 0)}
    assert (body["totalUnreadMessages"], body["totalUnreadMentions"]) == (3, 1)
    assert [(i["kind"], i["roomId"]) for i in body["items"]] == [
        ("direct_message", str(dm)),
        ("mention", str(room)),
    ]
    assert body["items"][0]["actorHandle"] == sender.handle
    assert body["nextBefore"] is None

    page1 = _get(api, reader, "/notifications", limit="1").json
    assert len(page1["items"]) == 1
    page2 = _get(api, reader, "/notifications", limit="1", before=str(page1["nextBefore"])).json
    assert [i["kind"] for i in page2["items"]] == ["mention"]

    # Someone else's ids are not ours to mark.
    assert _post(api, other, {"ids": [page1["items"][0]["id"]]}).json == {
        "roomsCleared": 0,
        "notificationsRead": 0,
    }

    cleared = _post(api, reader, {"roomIds": [str(room)]})
    assert cleared.status == 200, cleared.body
    assert cleared.json == {"roomsCleared": 1, "notificationsRead": 1}
    after = _get(api, reader, "/notifications", unreadOnly="true").json
    assert [r["roomId"] for r in after["rooms"]] == [str(dm)]
    assert [i["kind"] for i in after["items"]] == ["direct_message"]

    assert _post(api, reader, {"all": True}).json == {"roomsCleared": 1, "notificationsRead": 1}
    final = _get(api, reader, "/notifications", unreadOnly="true").json
    assert (final["rooms"], final["items"]) == ([], [])
    assert len(_get(api, reader, "/notifications").json["items"]) == 2  # still listed, as read


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"roomIds": ["not-a-uuid"]}, 422),
        ({"ids": [0]}, 422),
        ({"everything": True}, 422),
        ("[1, 2", 400),
    ],
)
def test_mark_read_refuses_bad_bodies(api: HttpApiClient, db: DB, body: Any, status: int) -> None:
    user = insert_user(db)
    if isinstance(body, str):
        resp = api.post(
            "/notifications/read",
            token=access_token(user),
            body=body,
            headers={"content-type": "application/json"},
        )
    else:
        resp = _post(api, user, body)
    assert resp.status == status, resp.body
    assert set(resp.json["error"]) >= {"code", "message"}


def test_list_refuses_bad_query_and_anonymous(api: HttpApiClient, db: DB) -> None:
    user = insert_user(db)
    for query in ({"limit": "0"}, {"limit": "abc"}, {"before": "-1"}, {"unreadOnly": "maybe"}):
        resp = _get(api, user, "/notifications", **query)
        assert resp.status == 422, (query, resp.body)
        assert "error" in resp.json
    assert api.get("/notifications").status == 401


def test_admin_analytics_is_for_admins_only_and_validates_dates(api: HttpApiClient, db: DB) -> None:
    user = insert_user(db)
    admin = insert_user(db, role="admin")
    assert _get(api, user, "/admin/analytics").status == 403
    ok = _get(api, admin, "/admin/analytics", **{"from": "2026-11-01", "to": "2026-11-03"})
    assert ok.status == 200, ok.body
    assert [d["date"] for d in ok.json["daily"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert set(ok.json["daily"][0]) >= {"activeUsers", "connectionsOpened", "messagesCreated"}
    assert _get(api, admin, "/admin/analytics", **{"from": "2026-11-05", "to": "2026-11-01"}).status == 422
    assert _get(api, admin, "/admin/analytics", **{"from": "yesterday"}).status == 422
    assert _get(api, admin, "/admin/analytics", roomId="nope").status == 422


def test_reading_the_room_or_leaving_it_clears_what_is_shown(api: HttpApiClient, db: DB) -> None:
    sender = insert_user(db)
    reader = insert_user(db)
    room = insert_room(db, sender.user_id, [reader.user_id])
    _deliver(_message(room, sender, 1, "one"))
    _deliver(_message(room, sender, 2, f"two @{reader.handle}", [reader.handle]))
    _deliver(_message(room, sender, 3, "three"))
    rooms = _get(api, reader, "/notifications").json["rooms"]
    assert [(r["unreadMessages"], r["unreadMentions"]) for r in rooms] == [(3, 1)]

    # markRead (ROOMS) moves the membership's read position; set here directly.
    db.execute(
        "UPDATE memberships SET last_read_seq = 2 WHERE room_id = %s AND user_id = %s", (room, reader.user_id)
    )
    body = _get(api, reader, "/notifications").json
    assert [(r["unreadMessages"], r["unreadMentions"]) for r in body["rooms"]] == [(1, 0)]
    assert [(i["kind"], i["read"]) for i in body["items"]] == [("mention", True)]
    assert _get(api, reader, "/notifications", unreadOnly="true").json["items"] == []

    db.execute(
        "UPDATE memberships SET last_read_seq = 3 WHERE room_id = %s AND user_id = %s", (room, reader.user_id)
    )
    assert _get(api, reader, "/notifications").json["rooms"] == []

    db.execute("DELETE FROM memberships WHERE room_id = %s AND user_id = %s", (room, reader.user_id))
    assert _get(api, reader, "/notifications").json == {
        "rooms": [],
        "totalUnreadMessages": 0,
        "totalUnreadMentions": 0,
        "items": [],
        "nextBefore": None,
    }
