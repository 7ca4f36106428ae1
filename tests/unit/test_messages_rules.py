"""Pure message/room rules: validation, mention parsing, wire shapes, cursors (no I/O)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest

from chatflow.adapters.postgres.rooms_repo import decode_cursor, encode_cursor
from chatflow.domain.messages import (
    mention_candidates,
    validate_body,
    validate_client_message_id,
    validate_seq,
)
from chatflow.domain.room_models import Membership, Message, Room, RoomView
from chatflow.domain.rooms import validate_name, validate_topic
from chatflow.errors import InvalidInput
from chatflow.settings import Settings
from chatflow.wire import message_to_dict, room_to_dict

SETTINGS = Settings(max_message_chars=10)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("hi @alice", ["alice"]),
        ("@Alice @alice @ALICE", ["alice"]),
        ("mail bob@example.com", []),
        ("@@alice", []),
        ("(@bob), @carol. and @dave-", ["bob", "carol", "dave"]),
        ("@a.b_c-d rest", ["a.b_c-d"]),
        ("no mentions", []),
        ("@", []),
    ],
)
def test_mention_candidates(body: str, expected: list[str]) -> None:
    assert mention_candidates(body) == expected


def test_mention_candidates_are_bounded() -> None:
    body = " ".join(f"@user{i}" for i in range(200))
    assert len(mention_candidates(body)) == 50


@pytest.mark.parametrize("body", ["", "   ", "\n\t", "x" * 11, "nul\x00", "bell\x07", "half \ud83d", 5, None])
def test_invalid_bodies(body: object) -> None:
    with pytest.raises(InvalidInput):
        validate_body(body, SETTINGS)


@pytest.mark.parametrize("body", ["x", "two\nlines", "tab\tok", "é" * 10, " padded "])
def test_valid_bodies_are_kept_verbatim(body: str) -> None:
    assert validate_body(body, SETTINGS) == body


@pytest.mark.parametrize("client_id", ["", " ", "a b", "a\n", "x" * 201, "ü", 12, None])
def test_invalid_client_ids(client_id: object) -> None:
    with pytest.raises(InvalidInput):
        validate_client_message_id(client_id)


@pytest.mark.parametrize("client_id", ["a", "c-1", "550e8400-e29b-41d4-a716-446655440000", "x" * 200])
def test_valid_client_ids(client_id: str) -> None:
    assert validate_client_message_id(client_id) == client_id


@pytest.mark.parametrize("seq", [0, -1, True, "3", 3.0, 2**63])
def test_invalid_seq(seq: object) -> None:
    with pytest.raises(InvalidInput):
        validate_seq(seq)


@pytest.mark.parametrize("name", ["", "  ", "-x", ".x", "a\nb", "a/b", "x" * 81])
def test_invalid_room_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_name(name)


def test_room_names_are_trimmed() -> None:
    assert validate_name("  Café crème_2.0 - team  ") == "Café crème_2.0 - team"


def test_topic_rules() -> None:
    assert validate_topic(" hello ") == "hello"
    with pytest.raises(InvalidInput):
        validate_topic("x" * 251)
    with pytest.raises(InvalidInput):
        validate_topic("line\nbreak")
    with pytest.raises(InvalidInput):
        validate_topic("lone \udfff surrogate")  # JSON can carry it; UTF-8 (Postgres) cannot


def _message(**overrides: object) -> Message:
    base: dict[str, object] = {
        "room_id": uuid4(),
        "seq": 7,
        "id": uuid4(),
        "sender_id": uuid4(),
        "sender_handle": "ada",
        "client_message_id": "c-7",
        "body": "secret",
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=timezone(timedelta(hours=2))),
    }
    base.update(overrides)
    return Message(**base)  # type: ignore[arg-type]


def test_message_to_dict_is_camel_case_utc() -> None:
    message = _message()
    data = message_to_dict(message)
    assert data == {
        "id": str(message.id),
        "roomId": str(message.room_id),
        "seq": 7,
        "senderId": str(message.sender_id),
        "senderHandle": "ada",
        "clientMessageId": "c-7",
        "body": "secret",
        "createdAt": "2026-01-02T01:04:05.600000Z",
        "editedAt": None,
        "deletedAt": None,
    }


def test_deleted_message_hides_body() -> None:
    data = message_to_dict(_message(deleted_at=datetime(2026, 1, 3, tzinfo=UTC)))
    assert data["body"] is None
    assert data["deletedAt"] == "2026-01-03T00:00:00Z"


def test_room_to_dict_unread_and_membership() -> None:
    room = Room(
        id=uuid4(), kind="public", name="g", topic="", created_by=uuid4(), created_at=datetime.now(UTC)
    )
    member = Membership(room.id, uuid4(), "member", last_read_seq=4, joined_at=datetime.now(UTC))
    data = room_to_dict(RoomView(room=room, last_seq=10, member_count=3, membership=member))
    assert (data["isMember"], data["role"], data["lastReadSeq"], data["unread"]) == (True, "member", 4, 6)
    outsider = room_to_dict(RoomView(room=room, last_seq=10, member_count=3, membership=None))
    assert (outsider["isMember"], outsider["role"], outsider["unread"]) == (False, None, 0)


def test_cursor_round_trip_and_garbage() -> None:
    cursor = encode_cursor(["2026-01-01T00:00:00+00:00", str(uuid4())])
    assert decode_cursor(cursor, 2)[0] == "2026-01-01T00:00:00+00:00"
    for bad in (
        "!!!",
        "e30",
        encode_cursor(["only-one"]),
        encode_cursor(["a", "b", "c"]),
        encode_cursor(["nul\x00", str(uuid4())]),
        base64.urlsafe_b64encode(b'["\\ud800", "x"]').decode(),
    ):
        with pytest.raises(InvalidInput):
            decode_cursor(bad, 2)
