"""Frame models and protocol helpers (no I/O)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from chatflow.errors import InvalidInput, PayloadTooLarge, Unauthorized
from chatflow.ws import frames, protocol

ROOM = str(uuid.uuid4())


VALID_FRAMES: dict[str, tuple[dict[str, object], type]] = {
    "ping": ({}, frames.Ping),
    "sendMessage": ({"roomId": ROOM, "clientMessageId": "c1", "body": "hi"}, frames.SendMessage),
    "editMessage": ({"roomId": ROOM, "seq": 3, "body": "x"}, frames.EditMessage),
    "deleteMessage": ({"roomId": ROOM, "seq": 3}, frames.DeleteMessage),
    "joinRoom": ({"roomId": ROOM}, frames.JoinRoom),
    "leaveRoom": ({"roomId": ROOM}, frames.LeaveRoom),
    "typing": ({"roomId": ROOM}, frames.Typing),
    "markRead": ({"roomId": ROOM, "seq": 0}, frames.MarkRead),
    "resume": ({"roomId": ROOM, "sinceSeq": 0}, frames.Resume),
    "presence": ({"roomId": ROOM, "cursor": ROOM, "limit": 5}, frames.Presence),
}


def test_every_action_parses_to_its_model() -> None:
    assert set(VALID_FRAMES) == set(protocol.ACTIONS)
    for action, (fields, model) in VALID_FRAMES.items():
        parsed = frames.parse_frame({"action": action, **fields})
        assert isinstance(parsed, model)


def test_typing_defaults_and_request_id() -> None:
    f = frames.parse_frame({"action": "typing", "roomId": ROOM, "requestId": "r1"})
    assert isinstance(f, frames.Typing)
    assert f.is_typing is True
    assert f.request_id == "r1"
    assert f.room_id == uuid.UUID(ROOM)


#: requestIds that are not 1-64 character strings: never echoed, the frame still parses.
UNUSABLE_REQUEST_IDS: list[object] = [
    5,
    1.5,
    0,
    True,
    False,
    "",
    "x" * 65,
    [],
    ["r"],
    {},
    {"a": 1},
    None,
    "\ud800",
]


@pytest.mark.parametrize("request_id", UNUSABLE_REQUEST_IDS)
def test_an_unusable_request_id_is_dropped_not_refused(request_id: object) -> None:
    for action, (fields, model) in VALID_FRAMES.items():
        parsed = frames.parse_frame({"action": action, **fields, "requestId": request_id})
        assert isinstance(parsed, model), action
        assert parsed.request_id is None, action


def test_a_request_id_of_64_characters_is_kept() -> None:
    parsed = frames.parse_frame({"action": "ping", "requestId": "x" * 64})
    assert parsed.request_id == "x" * 64


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "sendMessage", "roomId": ROOM, "clientMessageId": "c", "body": "b", "extra": 1},
        {"action": "sendMessage", "roomId": ROOM, "clientMessageId": "", "body": "b"},
        {"action": "editMessage", "roomId": ROOM, "seq": 0, "body": "b"},
        {"action": "editMessage", "roomId": ROOM, "seq": True, "body": "b"},
        {"action": "markRead", "roomId": ROOM, "seq": 1.5},
        {"action": "resume", "roomId": ROOM, "sinceSeq": 0, "limit": 0},
        {"action": "joinRoom", "roomId": 42},
        {"action": "presence", "roomId": ROOM, "cursor": "not-a-user-id"},
        {"action": "presence", "roomId": ROOM, "limit": 0},
        {"action": "nope"},
        {},
    ],
)
def test_schema_violations_raise_invalid_frame_with_details(frame: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as info:
        frames.parse_frame(frame)
    assert info.value.code == "invalid_frame"
    assert info.value.details["errors"]
    assert all({"field", "problem"} <= set(e) for e in info.value.details["errors"])


def test_body_object_errors() -> None:
    def ev(body: object, b64: bool = False) -> dict[str, object]:
        return {"body": body, "isBase64Encoded": b64, "requestContext": {"connectionId": "c="}}

    for bad in (None, "", "nope", "[1]", '"str"'):
        with pytest.raises(InvalidInput) as info:
            protocol.body_object(ev(bad))
        assert info.value.code == "invalid_json"
    with pytest.raises(InvalidInput):
        protocol.body_object(ev("eyJ9", b64=True))
    with pytest.raises(PayloadTooLarge) as too_big:
        protocol.body_object(ev(json.dumps({"a": "x" * protocol.MAX_MESSAGE_BYTES})))
    assert too_big.value.code == "frame_too_large"
    assert protocol.body_object(ev('{"action": "ping"}')) == {"action": "ping"}


def test_deeply_nested_json_is_a_client_error_not_a_crash() -> None:
    # 50k nested arrays fit in a frame but exceed the JSON parser's recursion limit.
    event = {"body": "[" * 50_000 + "]" * 50_000, "requestContext": {"connectionId": "c="}}
    with pytest.raises(InvalidInput) as info:
        protocol.body_object(event)
    assert info.value.code == "invalid_json"


def test_identity_requires_a_well_formed_authorizer_context() -> None:
    with pytest.raises(Unauthorized):
        protocol.identity({"requestContext": {}})
    with pytest.raises(Unauthorized):
        protocol.identity({"requestContext": {"authorizer": {"userId": "not-a-uuid", "role": "user"}}})
    uid = uuid.uuid4()
    ctx = {
        "userId": str(uid),
        "handle": "ann",
        "role": "user",
        "iat": "1700000000",
        "jti": "j",
        "principalId": "p",
    }
    ident = protocol.identity({"requestContext": {"authorizer": ctx}})
    assert ident.user_id == uid
    assert ident.issued_at == 1700000000


def test_error_reply_shape_keeps_the_connection_open() -> None:
    exc = InvalidInput("bad", code="invalid_frame", errors=[{"field": "x", "problem": "y"}])
    reply = protocol.error_reply(exc, action="sendMessage", request_id="r")
    assert reply["statusCode"] == 200
    assert json.loads(reply["body"]) == {
        "type": "error",
        "code": "invalid_frame",
        "message": "bad",
        "action": "sendMessage",
        "requestId": "r",
        "errors": [{"field": "x", "problem": "y"}],
    }


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "sendMessage", "roomId": "not-a-uuid", "clientMessageId": "", "body": "x", "extra": 1},
        {"action": "editMessage", "roomId": str(uuid.uuid4()), "seq": "1"},
        {"action": "typing", "roomId": str(uuid.uuid4()), "isTyping": "yes"},
        {"action": "resume", "sinceSeq": -1},
        {"action": "nope"},
        {"action": 7},
        {"roomId": str(uuid.uuid4())},
    ],
)
def test_problems_are_the_discriminated_unions(frame: dict[str, object]) -> None:
    """Validating a known action with its own model reports what the union reported."""
    from pydantic import TypeAdapter, ValidationError

    with pytest.raises(ValidationError) as union:
        TypeAdapter(frames.ClientFrame).validate_python(frame)
    expected = [
        {"field": frames._field(e["loc"]), "problem": e["msg"]}
        for e in union.value.errors(include_url=False, include_input=False)
    ]
    with pytest.raises(InvalidInput) as info:
        frames.parse_frame(frame)
    assert info.value.details["errors"] == expected


def test_the_first_frame_builds_only_its_own_model() -> None:
    code = (
        "import uuid\n"
        "from chatflow.ws import frames\n"
        "room = str(uuid.uuid4())\n"
        "frame = {'action': 'sendMessage', 'roomId': room, 'clientMessageId': 'c', 'body': 'b'}\n"
        "frames.parse_frame(frame)\n"
        "print(sorted(m.__name__ for m in frames._BY_ACTION.values() if m.__pydantic_complete__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['SendMessage']"
