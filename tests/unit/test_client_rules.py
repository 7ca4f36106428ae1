"""The Python client's rules as pure logic (clients/python/chatflow_client/state.py, wire.py):
seq ordering with gaps and duplicates, presence by version, backoff, tolerant parsing."""

from __future__ import annotations

import json

from chatflow_client import wire
from chatflow_client.models import Presence
from chatflow_client.state import Backoff, PresenceBook, SeqOrder


def test_seq_order_releases_in_order_exactly_once() -> None:
    order: SeqOrder[str] = SeqOrder()
    assert order.start_at(10)
    assert not order.start_at(3)  # known: kept
    assert order.offer(12, "b") == []  # 11 is missing: held
    assert order.has_gap
    assert order.offer(13, "c") == []
    assert order.offer(12, "b-again") == []  # a duplicate while held
    assert order.offer(11, "a") == ["a", "b", "c"]
    assert order.last_seq == 13
    assert not order.has_gap
    assert order.offer(12, "late duplicate") == []
    assert order.offer(14, "d") == ["d"]


def test_seq_order_without_a_position_starts_at_the_first_item() -> None:
    order: SeqOrder[str] = SeqOrder()
    assert order.offer(7, "x") == ["x"]
    assert order.last_seq == 7
    assert order.offer(6, "older") == []


def test_seq_order_reset_moves_either_way_and_releases_what_follows() -> None:
    order: SeqOrder[str] = SeqOrder(last_seq=50)
    order.offer(53, "c")
    assert order.reset(52) == ["c"]
    assert order.last_seq == 53
    assert order.reset(5) == []  # the server says the room ends earlier (restored database)
    assert order.offer(6, "next") == ["next"]


def test_presence_is_applied_by_version() -> None:
    book = PresenceBook()
    assert book.apply(Presence("u1", "online", 5, "ann"))
    assert not book.apply(Presence("u1", "offline", 4))  # crossed on the wire: stale
    assert not book.apply(Presence("u1", "offline", 5))  # not greater: stale
    current = book.get("u1")
    assert current == Presence("u1", "online", 5, "ann")
    assert book.apply(Presence("u1", "offline", 6))
    assert book.get("u1") == Presence("u1", "offline", 6, "ann")  # the handle is kept
    assert [p.user_id for p in book.online()] == []


def test_backoff_grows_with_jitter_and_caps() -> None:
    low = Backoff(0.5, 8.0, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    high = Backoff(0.5, 8.0, rng=lambda: 1.0)
    assert [high.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    for _ in range(100):
        high.next_delay()  # no overflow however long it fails
    high.reset()
    assert high.next_delay() == 0.5


def test_frames_parse_tolerantly() -> None:
    message = {
        "id": "m1",
        "roomId": "r1",
        "seq": 3,
        "senderId": "u1",
        "senderHandle": "ann",
        "clientMessageId": "c-1",
        "body": "hi",
        "createdAt": "2026-11-25T17:00:07.772445Z",
        "editedAt": None,
        "deletedAt": None,
        "reactions": {"👍": 2},  # a field from a newer server: ignored
    }
    frame = wire.server_frame(json.dumps({"type": "message", "message": message}))
    assert isinstance(frame, wire.MessageFrame)
    assert frame.message.seq == 3
    assert frame.message.created_at is not None
    assert frame.message.created_at.year == 2026

    broken = wire.server_frame(json.dumps({"type": "message", "message": {**message, "seq": "3"}}))
    assert isinstance(broken, wire.UnknownFrame)
    assert isinstance(wire.server_frame("not json"), wire.UnknownFrame)
    assert isinstance(wire.server_frame("[1, 2]"), wire.UnknownFrame)
    future = wire.server_frame(json.dumps({"type": "reaction", "requestId": "r-1"}))
    assert isinstance(future, wire.UnknownFrame)
    assert future.request_id == "r-1"

    error = wire.server_frame(
        json.dumps(
            {
                "type": "error",
                "code": "rate_limited",
                "message": "slow down",
                "action": "sendMessage",
                "requestId": "q-1",
                "retryAfterMs": 734,
            }
        )
    )
    assert isinstance(error, wire.ErrorFrame)
    assert (error.code, error.action, error.request_id, error.extra) == (
        "rate_limited",
        "sendMessage",
        "q-1",
        {"retryAfterMs": 734},
    )
    gateway = wire.server_frame(json.dumps({"message": "Internal server error", "requestId": "apigw-1"}))
    assert isinstance(gateway, wire.GatewayErrorFrame)
    assert gateway.request_id is None  # API Gateway's id, never matched to a client request


def test_presence_snapshots_parse_inside_joined_and_alone() -> None:
    online = [{"userId": "u1", "handle": "ann", "version": 9}, {"bogus": True}]
    joined = wire.server_frame(
        json.dumps({"type": "joined", "roomId": "r1", "presence": {"online": online, "more": False}})
    )
    assert isinstance(joined, wire.JoinedFrame)
    assert joined.presence is not None
    assert joined.presence.online == [Presence("u1", "online", 9, "ann")]
    plain = wire.server_frame(json.dumps({"type": "joined", "roomId": "r1"}))
    assert isinstance(plain, wire.JoinedFrame)
    assert plain.presence is None
    snapshot = wire.server_frame(
        json.dumps({"type": "presenceSnapshot", "roomId": "r1", "online": online[:1], "more": True})
    )
    assert isinstance(snapshot, wire.PresenceSnapshotFrame)
    assert snapshot.more


def test_http_error_bodies() -> None:
    assert wire.error_body(409, {"error": {"code": "name_taken", "message": "taken"}}) == (
        "name_taken",
        "taken",
        {},
    )
    assert wire.error_body(403, {"message": "Forbidden"}) == ("http_403", "Forbidden", {})
    assert wire.error_body(502, None) == ("http_502", "", {})
