"""Client mistakes fired at the real WebSocket handlers (real Postgres + Redis, local
@connections endpoint): every one must get an error frame with status 200 -- never an
``internal_error`` frame, an exception or an error-level log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from chatflow.domain.identity import Identity
from chatflow.domain.rooms import RoomService
from tests.support.rooms import insert_user
from tests.support.ws_harness import WsHarness, ws_harness

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def ws(chatflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[WsHarness]:
    # Limits high enough that every case reaches its action (rate limits have their own tests).
    names = ("RATE_MESSAGES_PER_10S", "RATE_TYPING_PER_10S", "RATE_REQUESTS_PER_10S")
    env = dict.fromkeys(names, "100000")
    with ws_harness(monkeypatch, env) as harness:
        yield harness


@pytest.fixture
def alice(db: DB, ws: WsHarness) -> Identity:
    return insert_user(db)


@pytest.fixture
def room_id(rooms: RoomService, alice: Identity) -> UUID:
    return rooms.create_channel(alice, "public", f"bad-{uuid4().hex[:8]}").room.id


def _cases(room: str) -> list[tuple[str, Any]]:
    big = 2**70
    cases: list[tuple[str, Any]] = []
    per_action: dict[str, dict[str, Any]] = {
        "sendMessage": {"roomId": room, "clientMessageId": "c", "body": "b"},
        "editMessage": {"roomId": room, "seq": 1, "body": "b"},
        "deleteMessage": {"roomId": room, "seq": 1},
        "joinRoom": {"roomId": room},
        "leaveRoom": {"roomId": room},
        "typing": {"roomId": room},
        "markRead": {"roomId": room, "seq": 0},
        "resume": {"roomId": room, "sinceSeq": 0},
    }
    bad_values: list[Any] = [
        None,
        1,
        -1,
        big,
        -big,
        1.5,
        True,
        "",
        "x",
        "\x00",
        "\ud800",
        "é\x00\ud800",
        [],
        {},
        ["a"],
        {"a": 1},
        "not-a-uuid",
        "00000000-0000-0000-0000-00000000000g",
    ]
    for action, fields in per_action.items():
        for name in fields:
            missing = {k: v for k, v in fields.items() if k != name}
            cases.append((f"{action}-missing-{name}", {"action": action, **missing}))
            for i, value in enumerate(bad_values):
                cases.append((f"{action}-{name}-{i}", {"action": action, **fields, name: value}))
        cases.append((f"{action}-extra", {"action": action, **fields, "zz": 1}))
        cases.append((f"{action}-extra-surrogate", {"action": action, **fields, "\ud800x": 1}))
        bad_request_ids: list[Any] = [1, [], {}, "", "r" * 65, None, "\ud800", "\x00"]
        for i, rid in enumerate(bad_request_ids):
            cases.append((f"{action}-requestId-{i}", {"action": action, **fields, "requestId": rid}))
    return cases


NON_ACTION_FRAMES: list[Any] = [
    {},
    {"action": None},
    {"action": 1},
    {"action": []},
    {"action": {}},
    {"action": "\x00"},
    {"action": "\ud800"},
    {"action": "nope"},
    {"requestId": 5},
    [],
    "str",
    1,
    None,
]


@pytest.fixture
def failed_log_lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Log records a handler could not write (e.g. a lone surrogate on a UTF-8 stream)."""
    failed: list[str] = []

    def record(self: logging.Handler, record: logging.LogRecord) -> None:
        failed.append(str(record.msg))

    monkeypatch.setattr(logging.Handler, "handleError", record)
    return failed


def _wrong(reply: dict[str, Any] | None, failed_log_lines: list[str]) -> str | None:
    """What is wrong with a reply to a client mistake (None: nothing)."""
    if failed_log_lines:
        line = failed_log_lines.pop()
        failed_log_lines.clear()
        return f"log line {line!r} could not be written"
    if reply is None:
        return None
    try:
        json.dumps(reply, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return "reply is not valid UTF-8 (echoes a lone surrogate)"
    if reply.get("code") == "internal_error":
        return "internal_error"
    return None


def _raw(frame: Any) -> str:
    # json.dumps keeps lone surrogates as \\ud800 escapes, as a client would send them.
    return json.dumps(frame)


def test_every_client_mistake_is_an_error_frame(
    ws: WsHarness,
    alice: Identity,
    room_id: UUID,
    caplog: pytest.LogCaptureFixture,
    failed_log_lines: list[str],
) -> None:
    cid = ws.connected(alice)
    problems: list[str] = []
    for room in (str(room_id), str(uuid4())):
        for name, frame in _cases(room):
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                try:
                    reply = ws.send(cid, _raw(frame), route_key=frame["action"])
                except Exception as exc:  # collected, reported below
                    problems.append(f"{name}: raised {exc!r}")
                    continue
            errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            wrong = _wrong(reply, failed_log_lines) or (errors and f"error logged: {errors[0]}")
            if wrong:
                problems.append(f"{name}: {wrong}: {reply!r}")
    assert problems == [], "\n".join(problems[:40])


def test_frames_without_a_usable_action_on_every_route(
    ws: WsHarness, alice: Identity, caplog: pytest.LogCaptureFixture, failed_log_lines: list[str]
) -> None:
    cid = ws.connected(alice)
    problems: list[str] = []
    raws = [_raw(f) for f in NON_ACTION_FRAMES] + ["", "{", "\x00", '"\\ud800"', "\ud800", "[" * 100_000]
    for route in ("$default", "ping", "sendMessage", "resume"):
        for raw in raws:
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                try:
                    reply = ws.send(cid, raw, route_key=route)
                except Exception as exc:  # collected, reported below
                    problems.append(f"{route} {raw[:40]!r}: raised {exc!r}")
                    continue
            errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            wrong = _wrong(reply, failed_log_lines) or (errors and f"error logged: {errors[0]}")
            if (
                not wrong
                and reply.get("type") != "error"
                and not (route == "ping" and reply["type"] == "pong")
            ):
                wrong = "not an error frame"  # ping ignores its body
            if wrong:
                problems.append(f"{route} {raw[:40]!r}: {wrong}: {reply!r}")
    assert problems == [], "\n".join(problems[:40])


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"action": "resume", "sinceSeq": 10**6}, "seq_beyond_last"),
        ({"action": "editMessage", "seq": 2**62, "body": "x"}, "message_not_found"),
        ({"action": "deleteMessage", "seq": 2**62}, "message_not_found"),
        ({"action": "editMessage", "seq": 2**62 + 1, "body": "x"}, "invalid_frame"),
        ({"action": "resume", "sinceSeq": -1}, "invalid_frame"),
    ],
)
def test_sequences_beyond_the_room(
    ws: WsHarness, alice: Identity, room_id: UUID, frame: dict[str, Any], code: str
) -> None:
    cid = ws.connected(alice)
    reply = ws.send(cid, {**frame, "roomId": str(room_id)})
    assert reply["type"] == "error"
    assert reply["code"] == code
    if code == "seq_beyond_last":
        assert reply["lastSeq"] == 0  # where to resume from instead


def test_error_frames_stay_small_whatever_the_frame_holds(ws: WsHarness, alice: Identity) -> None:
    """A frame of thousands of unknown (or very long) fields is refused in a reply that fits one
    WebSocket frame (32 KB), not one that lists every problem at full length."""
    cid = ws.connected(alice)
    many = {"action": "ping", **{f"k{i}": 1 for i in range(8000)}}
    long = {"action": "joinRoom", "roomId": "r", **{"x" * 20_000 + str(i): 1 for i in range(5)}}
    for frame, route in ((many, "sendMessage"), (long, "joinRoom")):
        reply = ws.send(cid, json.dumps(frame), route_key=route)
        assert reply["code"] == "invalid_frame"
        assert len(json.dumps(reply).encode()) < 32 * 1024
