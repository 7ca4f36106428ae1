"""Client mistakes through the real authorizer + http_api handler never end in a 500.

Rooms, messages, notifications and analytics routes, each fed malformed ids, wrong types,
out-of-range numbers and strings Postgres cannot store: every answer is a 4xx JSON error
``{"error": {"code", "message"}}`` (or, where the input is merely odd but harmless, a 2xx).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest

from chatflow.domain.messages import MessageService
from chatflow.domain.rooms import RoomService
from tests.support.rooms import ApiUser

BIGINT_OVERFLOW = str(2**63)
JSON_TYPE = {"content-type": "application/json"}
Setup = tuple[ApiUser, ApiUser, UUID]


@pytest.fixture
def setup(rooms: RoomService, messages: MessageService, make_api_user: Callable[..., ApiUser]) -> Setup:
    """A member (the room's owner), an admin, and a public room with one message."""
    owner, admin = make_api_user(), make_api_user(role="admin")
    room_id = rooms.create_channel(owner.identity, "public", f"bad-{uuid4().hex[:8]}").room.id
    messages.send(owner.identity, room_id, "c-1", "hello")
    return owner, admin, room_id


def _cursor(*values: str) -> str:
    """A cursor in the rooms repository's format (base64url of a JSON list), with any content."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


# (method, path with {room}, request kwargs, expected status, expected error code or None)
CASES: list[tuple[str, str, dict[str, Any], int, str | None]] = [
    ("GET", "/rooms/not-a-uuid", {}, 422, "invalid"),
    ("GET", "/rooms", {"query": {"cursor": "!!!!"}}, 422, "invalid_cursor"),
    # Well-formed cursors carrying what Postgres cannot take: a NUL, a lone surrogate.
    (
        "GET",
        "/rooms",
        {"query": {"scope": "public", "cursor": _cursor("\x00", str(uuid4()))}},
        422,
        "invalid_cursor",
    ),
    (
        "GET",
        "/rooms",
        {"query": {"scope": "public", "cursor": _cursor("\ud800", str(uuid4()))}},
        422,
        "invalid_cursor",
    ),
    ("POST", "/rooms", {"body": ""}, 422, "invalid"),
    ("POST", "/rooms", {"body": "{bad", "headers": JSON_TYPE}, 400, "malformed_json"),
    ("POST", "/rooms", {"json": {"kind": "public", "name": 5}}, 422, "invalid"),
    ("POST", "/rooms", {"json": {"kind": "public", "name": "ok", "topic": "a\x00b"}}, 422, "invalid_topic"),
    # A handle with a NUL byte cannot exist (and Postgres text cannot even hold one).
    ("POST", "/dms", {"json": {"handle": "a\x00b"}}, 404, "user_not_found"),
    ("POST", "/rooms/{room}/members", {"json": {"handle": "\x00"}}, 404, "user_not_found"),
    ("DELETE", "/rooms/{room}/members/xyz", {}, 422, "invalid"),
    ("GET", "/rooms/{room}/messages", {"query": {"before": "-1"}}, 422, "invalid"),
    ("GET", "/rooms/{room}/messages", {"query": {"after": "1e3"}}, 422, "invalid"),
    ("GET", "/rooms/{room}/messages", {"query": {"before": "2", "after": "5"}}, 422, "invalid_range"),
    ("PATCH", "/rooms/{room}/messages/-1", {"json": {"body": "x"}}, 422, "invalid"),
    ("PATCH", "/rooms/{room}/messages/99999999999999999999", {"json": {"body": "x"}}, 422, "invalid"),
    ("PATCH", "/rooms/{room}/messages/1", {"json": {"body": "\x00"}}, 422, "invalid_body"),
    ("PATCH", "/rooms/{room}/messages/1", {"json": {"body": "\ud800"}}, 422, "invalid"),
    ("POST", "/rooms/{room}/read", {"json": {"seq": -1}}, 422, "invalid"),
    ("POST", "/rooms/{room}/read", {"json": {"seq": 1.5}}, 422, "invalid"),
    ("POST", "/rooms/{room}/read", {"json": {"seq": "1"}}, 422, "invalid"),
    ("POST", "/rooms/{room}/read", {"json": {"seq": True}}, 422, "invalid"),
    ("GET", "/notifications", {"query": {"before": BIGINT_OVERFLOW}}, 422, "invalid"),
    ("GET", "/notifications", {"query": {"before": "9" * 30}}, 422, "invalid"),
    ("POST", "/notifications/read", {"json": {"ids": [int(BIGINT_OVERFLOW)]}}, 422, "invalid"),
    ("POST", "/notifications/read", {"json": {"roomIds": ["x"]}}, 422, "invalid"),
    ("GET", "/admin/analytics", {"query": {"from": "2020-13-01"}}, 422, "invalid"),
    # Ranges at the edges of the calendar: date arithmetic must not overflow into a 500.
    ("GET", "/admin/analytics", {"query": {"from": "9999-12-31", "to": "9999-12-31"}}, 422, "invalid"),
    # ...and the default 7-day window is clipped at the first day there is.
    ("GET", "/admin/analytics", {"query": {"to": "0001-01-03"}}, 200, None),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), CASES)
def test_client_mistake_is_a_clear_4xx(
    setup: Setup,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    owner, admin, room_id = setup
    caller = admin if path.startswith("/admin") else owner
    resp = caller(method, path.format(room=room_id), **kwargs)
    assert resp.status == status, resp.body
    if code is None:
        assert "error" not in resp.json
    else:
        assert resp.json["error"]["code"] == code
        assert resp.json["error"]["message"]


def test_huge_history_limit_is_capped_not_refused(setup: Setup) -> None:
    owner, _, room_id = setup
    resp = owner.get(f"/rooms/{room_id}/messages", query={"limit": "9" * 30})
    assert resp.status == 200, resp.body
    assert [m["seq"] for m in resp.json["messages"]] == [1]
