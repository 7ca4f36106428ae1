"""Chat actions through the real ws_messages handler: real Postgres + Redis, fan-out over HTTP
to the local @connections endpoint (tests/support/ws_harness.py)."""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from chatflow.domain.identity import Identity
from chatflow.settings import get_settings
from tests.support.lambdas import load_handler_module, reset_handlers
from tests.support.rooms import insert_user
from tests.support.ws_harness import WsHarness

DB = psycopg.Connection[dict[str, Any]]


def _send(ws: WsHarness, cid: str, room_id: UUID, client_id: str, body: str = "hi") -> Any:
    return ws.send(
        cid, {"action": "sendMessage", "roomId": str(room_id), "clientMessageId": client_id, "body": body}
    )


def _messages(ws: WsHarness, cid: str) -> list[dict[str, Any]]:
    return [f["message"] for f in ws.received(cid, "message")]


def test_send_acks_and_fans_out_to_every_member_device_once(
    ws: WsHarness, db: DB, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    outsider = insert_user(db)
    a_phone, a_laptop = ws.connected(alice), ws.connected(alice)
    b_phone = ws.connected(bob)
    o_cid = ws.connected(outsider)
    ws.clear()

    ack = _send(ws, a_phone, room_id, "m-1", "hello @" + bob.handle)
    assert ack["type"] == "ack"
    assert ack["clientMessageId"] == "m-1"
    assert ack["seq"] == 1
    assert ack["duplicate"] is False
    UUID(ack["messageId"])

    for cid in (b_phone, a_laptop):  # every device of every member...
        (message,) = _messages(ws, cid)
        assert message["id"] == ack["messageId"]
        assert message["body"] == "hello @" + bob.handle
        assert message["senderId"] == str(alice.user_id)
    assert _messages(ws, a_phone) == []  # ...but the sending connection (it got the ack)
    assert ws.received(o_cid) == []  # non-members receive nothing


def test_resend_with_same_client_id_returns_original_ack_and_creates_nothing(
    ws: WsHarness, db: DB, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    a = ws.connected(alice)
    b = ws.connected(bob)
    ws.clear()
    first = _send(ws, a, room_id, "dup-1", "once")
    again = _send(ws, a, room_id, "dup-1", "once")
    assert {k: v for k, v in again.items() if k != "duplicate"} == {
        k: v for k, v in first.items() if k != "duplicate"
    }
    assert again["duplicate"] is True
    rows = db.execute("SELECT count(*) AS n FROM messages WHERE room_id = %s", (room_id,)).fetchone()
    assert rows == {"n": 1}
    assert len(_messages(ws, b)) == 1  # no second delivery


def test_messages_arrive_in_sequence_order(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    a, b = ws.connected(alice), ws.connected(bob)
    ws.clear()
    acks = [_send(ws, a, room_id, f"o-{i}", f"body {i}") for i in range(8)]
    assert all(x["type"] == "ack" for x in acks)
    assert [x["seq"] for x in acks] == list(range(1, 9))
    assert [m["seq"] for m in _messages(ws, b)] == list(range(1, 9))
    assert [m["body"] for m in _messages(ws, b)] == [f"body {i}" for i in range(8)]


def test_gone_recipient_connection_is_removed_not_the_senders(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    a = ws.connected(alice)
    b_live, b_stale = ws.connected(bob), ws.connected(bob)
    ws.backend.mark_gone(b_stale)  # the device vanished; $disconnect never came
    ws.clear()
    ack = _send(ws, a, room_id, "g-1")
    assert ack["type"] == "ack"
    assert len(_messages(ws, b_live)) == 1
    targets = {
        t.connection_id for t in ws.container.connection_registry.connections_of([alice.user_id, bob.user_id])
    }
    assert b_stale not in targets  # THAT recipient's connection is gone from the registry
    assert {a, b_live} <= targets  # the sender and the live device stay
    # bob still has a live device: no "offline" announcement for him
    assert [f for f in ws.received(a, "presence") if f["status"] == "offline"] == []


def test_last_gone_connection_makes_the_user_offline(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    a = ws.connected(alice)
    b = ws.connected(bob)
    ws.backend.mark_gone(b)
    ws.clear()
    _send(ws, a, room_id, "g-2")
    assert ws.container.connection_registry.online_user_ids([bob.user_id]) == set()
    offline = [f for f in ws.received(a, "presence") if f["status"] == "offline"]
    assert [(f["userId"], type(f["version"])) for f in offline] == [(str(bob.user_id), int)]


def test_resume_after_a_gap_returns_missed_messages_in_bounded_pages(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    a = ws.connected(alice)
    b = ws.connected(bob)
    _send(ws, a, room_id, "r-1", "one")
    _send(ws, a, room_id, "r-2", "two")
    ws.disconnect(b)  # bob goes away...
    for i in range(3, 8):
        _send(ws, a, room_id, f"r-{i}", f"msg {i}")
    b2 = ws.connected(bob)  # ...and comes back having seen up to seq 2

    page = ws.send(b2, {"action": "resume", "roomId": str(room_id), "sinceSeq": 2, "limit": 2})
    assert page["type"] == "resumed"
    assert [m["seq"] for m in page["messages"]] == [3, 4]
    assert page["more"] is True
    seen = [m["seq"] for m in page["messages"]]
    while page["more"]:
        page = ws.send(
            b2, {"action": "resume", "roomId": str(room_id), "sinceSeq": page["nextSinceSeq"], "limit": 2}
        )
        seen += [m["seq"] for m in page["messages"]]
    assert seen == [3, 4, 5, 6, 7]
    assert page["lastSeq"] == 7


def test_resume_pages_fit_one_frame(ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID) -> None:
    a = ws.connected(alice)
    big = "\U0001f600" * get_settings().max_message_chars  # 4 bytes a character in UTF-8
    for i in range(10):
        assert _send(ws, a, room_id, f"big-{i}", big)["type"] == "ack"
    b = ws.connected(bob)
    page = ws.send(b, {"action": "resume", "roomId": str(room_id), "sinceSeq": 0, "limit": 100})
    assert len(json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode()) <= 128 * 1024
    assert page["more"] is True
    assert [m["seq"] for m in page["messages"]] == list(range(1, len(page["messages"]) + 1))


def test_resume_requires_membership(ws: WsHarness, db: DB, room_id: UUID) -> None:
    outsider = insert_user(db)
    cid = ws.connected(outsider)
    reply = ws.send(cid, {"action": "resume", "roomId": str(room_id), "sinceSeq": 0})
    assert reply["type"] == "error"
    assert reply["code"] == "not_a_member"


def test_edit_and_delete_fan_out(ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID) -> None:
    a, b = ws.connected(alice), ws.connected(bob)
    seq = _send(ws, a, room_id, "e-1", "draft")["seq"]
    ws.clear()
    edited = ws.send(a, {"action": "editMessage", "roomId": str(room_id), "seq": seq, "body": "final"})
    assert edited["type"] == "messageEdited"
    assert edited["message"]["body"] == "final"
    assert ws.received(b, "messageEdited")[0]["message"]["body"] == "final"
    # bob is not the author
    refused = ws.send(b, {"action": "editMessage", "roomId": str(room_id), "seq": seq, "body": "mine"})
    assert refused["code"] == "not_author"
    deleted = ws.send(a, {"action": "deleteMessage", "roomId": str(room_id), "seq": seq})
    assert deleted["type"] == "messageDeleted"
    assert ws.received(b, "messageDeleted")[0]["message"]["body"] is None


def test_mark_read_tells_the_users_other_devices(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    a = ws.connected(alice)
    b_phone, b_laptop = ws.connected(bob), ws.connected(bob)
    for i in range(3):
        _send(ws, a, room_id, f"mr-{i}")
    ws.clear()
    reply = ws.send(b_phone, {"action": "markRead", "roomId": str(room_id), "seq": 2})
    assert reply == {"type": "read", "roomId": str(room_id), "seq": 2}
    assert ws.received(b_laptop, "read") == [{"type": "read", "roomId": str(room_id), "seq": 2}]
    assert ws.received(a, "read") == []  # other users are not told


def test_typing_goes_to_subscribed_members_only_and_is_rate_limited(
    ws: WsHarness, db: DB, alice: Identity, bob: Identity, room_id: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lower_rate_limits(monkeypatch, rate_typing_per_10s=3)  # refills one per 3.3 s
    a = ws.connected(alice)
    b_open, b_elsewhere = ws.connected(bob), ws.connected(bob)
    outsider = insert_user(db)
    o = ws.connected(outsider)
    joined = ws.send(b_open, {"action": "joinRoom", "roomId": str(room_id)})
    assert (joined["type"], joined["roomId"]) == ("joined", str(room_id))
    online = {e["userId"] for e in joined["presence"]["online"]}
    assert online == {str(alice.user_id), str(bob.user_id)}  # the snapshot (test_presence_snapshot.py)
    refused = ws.send(o, {"action": "joinRoom", "roomId": str(room_id)})
    assert refused["code"] == "not_a_member"  # live subscription requires membership
    ws.clear()

    assert ws.send(a, {"action": "typing", "roomId": str(room_id)}) is None
    (typing,) = ws.received(b_open, "typing")
    assert typing == {
        "type": "typing",
        "roomId": str(room_id),
        "userId": str(alice.user_id),
        "handle": alice.handle,
        "isTyping": True,
    }
    assert ws.received(b_elsewhere) == []  # not subscribed to this room
    assert ws.received(o) == []

    limit = get_settings().rate_typing_per_10s
    replies = [ws.send(a, {"action": "typing", "roomId": str(room_id)}) for _ in range(limit + 2)]
    errors = [r for r in replies if r is not None]
    assert errors, "typing beyond the limit must be refused"
    assert errors[0]["code"] == "rate_limited"
    assert errors[0]["retryAfterMs"] > 0
    assert len(ws.received(b_open, "typing")) == limit  # 1 + (limit - 1) allowed, never stored

    ws.send(b_open, {"action": "leaveRoom", "roomId": str(room_id)})
    ws.clear()
    ws.send(b_elsewhere, {"action": "typing", "roomId": str(room_id)})
    assert ws.received(b_open) == []


def _lower_rate_limits(monkeypatch: pytest.MonkeyPatch, **limits: int) -> None:
    """Set the limits and cold-start the functions, so their containers read them."""

    for name, value in limits.items():
        monkeypatch.setenv(name.upper(), str(value))
    reset_handlers()


def test_message_rate_limit_per_connection(
    ws: WsHarness, alice: Identity, room_id: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lower_rate_limits(monkeypatch, rate_messages_per_10s=3)  # refills one per 3.3 s
    a, a2 = ws.connected(alice), ws.connected(alice)
    # Warm the function (cold start, first Postgres connection) with a frame of another budget:
    # a first send slower than one refill would otherwise let a fourth message through.
    assert ws.send(a, {"action": "resume", "roomId": str(room_id), "sinceSeq": 0})["type"] == "resumed"
    limit = get_settings().rate_messages_per_10s
    # The bucket refills one token per 10/limit s: on a loaded machine the sends themselves can
    # take that long, so each refill that elapsed during the burst may admit one more message.
    started = time.monotonic()
    replies: list[Any] = []
    while len(replies) < limit + 10 and (not replies or replies[-1]["type"] == "ack"):
        replies.append(_send(ws, a, room_id, f"rl-{len(replies)}"))
    refills = int((time.monotonic() - started) / (10 / limit))
    assert [r["type"] for r in replies[:limit]] == ["ack"] * limit
    assert replies[-1]["code"] == "rate_limited", replies
    assert len(replies) - 1 <= limit + refills, (len(replies), refills)
    assert replies[-1]["retryAfterMs"] > 0
    assert _send(ws, a2, room_id, "rl-other")["type"] == "ack"  # per connection


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "resume", "sinceSeq": 0},
        {"action": "markRead", "seq": 0},
        {"action": "joinRoom"},
        {"action": "leaveRoom"},
    ],
)
def test_database_reading_actions_are_rate_limited_per_connection(
    ws: WsHarness, alice: Identity, room_id: UUID, monkeypatch: pytest.MonkeyPatch, frame: dict[str, Any]
) -> None:
    """A client looping on resume/markRead/joinRoom would otherwise hit Postgres without limit."""
    _lower_rate_limits(monkeypatch, rate_requests_per_10s=3)
    a, a2 = ws.connected(alice), ws.connected(alice)
    replies = [ws.send(a, {**frame, "roomId": str(room_id)}) for _ in range(4)]
    assert [r["type"] for r in replies[:3]] == [replies[0]["type"]] * 3, replies
    assert replies[0]["type"] != "error"
    assert replies[3]["code"] == "rate_limited"
    assert replies[3]["retryAfterMs"] > 0
    assert ws.send(a2, {**frame, "roomId": str(room_id)})["type"] != "error"  # per connection
    assert ws.send(a, {"action": "ping"})["type"] == "pong"  # ping is never limited


def test_account_check_and_rate_limit_share_a_round_trip_and_the_ban_wins(
    ws: WsHarness, db: DB, alice: Identity, room_id: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ws_messages reads the cached account status in the rate limit's pipeline
    (chatflow.ws.admission): a ban written to the cache refuses the next frame, and a banned
    user hears ``account_disabled`` rather than ``rate_limited`` or a frame error."""
    from chatflow.adapters.redis_user_status import status_key
    from chatflow.domain.user_models import UserStatus

    _lower_rate_limits(monkeypatch, rate_messages_per_10s=1)
    a = ws.connected(alice)
    assert _send(ws, a, room_id, "adm-1")["type"] == "ack"
    assert _send(ws, a, room_id, "adm-2")["code"] == "rate_limited"
    # Only the cache says "banned" (Postgres still says active): the pipelined read decides.
    ws.container.user_status_cache.put(
        alice.user_id, UserStatus(status="banned", tokens_valid_after=0.0, role="user", handle=alice.handle)
    )
    assert _send(ws, a, room_id, "adm-3")["code"] == "account_disabled"
    assert ws.send(a, {"action": "sendMessage", "roomId": "nope"})["code"] == "account_disabled"
    assert (
        ws.send(a, {"action": "resume", "roomId": str(room_id), "sinceSeq": 0})["code"] == "account_disabled"
    )
    redis = ws.container.redis
    redis.client.delete(status_key(redis, alice.user_id))  # back to Postgres' word: active
    assert ws.send(a, {"action": "resume", "roomId": str(room_id), "sinceSeq": 0})["type"] == "resumed"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"action": "sendMessage", "clientMessageId": "x", "body": "no room"}, "invalid_frame"),
        (
            {"action": "sendMessage", "roomId": "not-a-uuid", "clientMessageId": "x", "body": "b"},
            "invalid_frame",
        ),
        (
            {"action": "sendMessage", "roomId": str(uuid4()), "clientMessageId": "x", "body": ""},
            "invalid_frame",
        ),
        (
            {"action": "sendMessage", "roomId": str(uuid4()), "clientMessageId": "x", "body": "b", "x": 1},
            "invalid_frame",
        ),
        ({"action": "editMessage", "roomId": str(uuid4()), "seq": "1", "body": "b"}, "invalid_frame"),
        ({"action": "resume", "roomId": str(uuid4()), "sinceSeq": -1}, "invalid_frame"),
        ({"action": "typing", "roomId": str(uuid4()), "isTyping": "yes"}, "invalid_frame"),
        (
            {"action": "sendMessage", "roomId": str(uuid4()), "clientMessageId": "x", "body": "b"},
            "room_not_found",
        ),
    ],
)
def test_invalid_frames_get_error_frames_and_the_connection_stays(
    ws: WsHarness, alice: Identity, frame: dict[str, Any], code: str
) -> None:
    cid = ws.connected(alice)
    reply = ws.send(cid, {**frame, "requestId": "req-9"})
    assert reply["type"] == "error"
    assert reply["code"] == code
    assert reply["requestId"] == "req-9"
    assert reply["message"]
    # still connected: the next valid frame works
    assert ws.send(cid, {"action": "ping"})["type"] == "pong"


def test_body_longer_than_the_limit_is_refused(ws: WsHarness, alice: Identity, room_id: UUID) -> None:
    cid = ws.connected(alice)
    reply = _send(ws, cid, room_id, "long", "y" * (get_settings().max_message_chars + 1))
    assert reply["code"] == "body_too_long"


def test_non_json_and_oversized_frames_on_an_action_route(ws: WsHarness, alice: Identity) -> None:
    cid = ws.connected(alice)
    assert ws.send(cid, "{broken", route_key="sendMessage")["code"] == "invalid_json"
    huge = json.dumps({"action": "sendMessage", "body": "z" * (130 * 1024)})
    assert ws.send(cid, huge, route_key="sendMessage")["code"] == "frame_too_large"


def test_non_member_send_is_refused_and_nothing_is_delivered(
    ws: WsHarness, db: DB, bob: Identity, room_id: UUID
) -> None:
    outsider = insert_user(db)
    o = ws.connected(outsider)
    b = ws.connected(bob)
    ws.clear()
    reply = _send(ws, o, room_id, "intrude")
    assert reply["code"] == "not_a_member"
    assert ws.received(b) == []


def test_a_failed_fan_out_still_acks_the_stored_message(
    ws: WsHarness, db: DB, alice: Identity, bob: Identity, room_id: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = ws.connected(alice)
    ws.connected(bob)
    registry = load_handler_module("ws_messages").container.connection_registry

    def down(*args: object, **kwargs: object) -> object:
        raise ConnectionError("registry unavailable")  # an outage AFTER the message was stored

    monkeypatch.setattr(registry, "connections_of", down)
    ack = _send(ws, a, room_id, "after-outage", "still stored")
    assert ack["type"] == "ack"
    stored = db.execute("SELECT body FROM messages WHERE id = %s", (UUID(ack["messageId"]),)).fetchone()
    assert stored == {"body": "still stored"}
