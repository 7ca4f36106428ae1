"""docs/protocol.md, action by action and error code by error code, on raw sockets (the wire as
documented, not what a client library makes of it). Every error frame leaves the connection open:
each test ends with a ``ping`` on the socket that was refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.acceptance.support import Actor, RawSocket, World, run
from tests.e2e.target import Target


async def _still_open(sock: RawSocket) -> None:
    pong = await sock.request({"action": "ping"})
    assert pong["type"] == "pong", pong


async def _two_in_a_room(w: World) -> tuple[Actor, RawSocket, Actor, RawSocket, str]:
    alice, bob = await w.user("alice"), await w.user("bob")
    room = await w.room(alice, bob)
    return alice, await alice.socket(), bob, await bob.socket(), room


async def _send(sock: RawSocket, room: str, body: str, cid: str | None = None) -> dict[str, Any]:
    ack = await sock.request(
        {
            "action": "sendMessage",
            "roomId": room,
            "clientMessageId": cid or f"c-{uuid.uuid4().hex}",
            "body": body,
        }
    )
    assert ack["type"] == "ack", ack
    return ack


def _error(frame: dict[str, Any], code: str) -> dict[str, Any]:
    assert frame.get("type") == "error", frame
    assert frame.get("code") == code, frame
    assert isinstance(frame.get("message"), str), frame
    assert frame["message"], frame
    return frame


# --- ping, requestId --------------------------------------------------------------------------------


def test_ping_answers_pong_with_server_time_and_the_request_id(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            sock = await (await w.user()).socket()
            await sock.send({"action": "ping", "requestId": "p-1"})
            pong = await sock.next_of_type("pong")
            assert pong["requestId"] == "p-1"
            assert isinstance(pong["serverTime"], int)
            assert pong["serverTime"] > 1_700_000_000_000

    run(scenario)


BAD_REQUEST_IDS: list[Any] = [7, "", "x" * 65, ["a"], {"a": 1}, True]


@pytest.mark.parametrize("action", ["ping", "joinRoom", "markRead", "resume"])
def test_a_malformed_request_id_is_not_echoed_and_the_frame_still_runs(
    e2e_target: Target, action: str
) -> None:
    """Numbers, "", 65 characters, a list, an object, a boolean: each frame is processed."""

    async def scenario() -> None:
        async with World(e2e_target) as w:
            _, sock, _, _, room = await _two_in_a_room(w)
            await _send(sock, room, "one")  # something to read and resume
            frames: dict[str, tuple[dict[str, Any], str]] = {
                "ping": ({"action": "ping"}, "pong"),
                "joinRoom": ({"action": "joinRoom", "roomId": room}, "joined"),
                "markRead": ({"action": "markRead", "roomId": room, "seq": 1}, "read"),
                "resume": ({"action": "resume", "roomId": room, "sinceSeq": 0}, "resumed"),
            }
            frame, reply_type = frames[action]
            for bad in BAD_REQUEST_IDS:
                await sock.send({**frame, "requestId": bad})
                reply = await sock.wait_for(
                    lambda f: isinstance(f, dict) and f.get("type") in (reply_type, "error"),
                    what=f"a reply to requestId {bad!r}",
                )
                assert reply["type"] == reply_type, (bad, reply)
                assert "requestId" not in reply, (bad, reply)

    run(scenario)


# --- errors any frame can get ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["not json", "[1, 2]", '"a string"', "{", b"\x00\x01binary"],
    ids=["text", "array", "string", "truncated", "binary"],
)
def test_a_frame_that_is_not_a_json_object_gets_invalid_json(e2e_target: Target, raw: str | bytes) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            sock = await (await w.user()).socket()
            await sock.send(raw)
            _error(await sock.next_of_type("error"), "invalid_json")
            await _still_open(sock)

    run(scenario)


@pytest.mark.parametrize("frame", [{"action": "fly"}, {"roomId": "x"}], ids=["unknown", "missing"])
def test_an_unknown_or_missing_action_gets_unknown_action_with_the_valid_ones(
    e2e_target: Target, frame: dict[str, Any]
) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            sock = await (await w.user()).socket()
            await sock.send(frame)
            error = _error(await sock.next_of_type("error"), "unknown_action")
            documented = {"ping", "sendMessage", "editMessage", "deleteMessage", "joinRoom", "leaveRoom"}
            documented |= {"typing", "markRead", "resume"}
            assert documented <= set(error["validActions"]), error
            await _still_open(sock)

    run(scenario)


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"action": "sendMessage", "clientMessageId": "c-1", "body": "hi"}, "roomId"),
        ({"action": "sendMessage", "roomId": "not-a-uuid", "clientMessageId": "c-1", "body": "hi"}, "roomId"),
        ({"action": "markRead", "roomId": str(uuid.uuid4()), "seq": -1}, "seq"),
        ({"action": "joinRoom", "roomId": str(uuid.uuid4()), "colour": "blue"}, "colour"),
        ({"action": "typing", "roomId": str(uuid.uuid4()), "isTyping": "yes please"}, "isTyping"),
    ],
    ids=["missing-field", "bad-uuid", "negative-seq", "extra-field", "wrong-type"],
)
def test_a_schema_violation_gets_invalid_frame_naming_the_field(
    e2e_target: Target, frame: dict[str, Any], field: str
) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            sock = await (await w.user()).socket()
            error = _error(await sock.request(frame), "invalid_frame")
            assert error["action"] == frame["action"]
            assert 1 <= len(error["errors"]) <= 10
            assert any(field in str(e["field"]) and e["problem"] for e in error["errors"]), error
            await _still_open(sock)

    run(scenario)


# --- sendMessage ------------------------------------------------------------------------------------


def test_send_message_acks_with_seq_and_delivers_to_every_other_connection(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, a_sock, _bob, b_sock, room = await _two_in_a_room(w)
            a_other = await (await w.device(alice)).socket()  # the sender's other device
            ack = await a_sock.request(
                {"action": "sendMessage", "roomId": room, "clientMessageId": "c-first", "body": "hello @bob"}
            )
            assert ack["type"] == "ack", ack
            assert (ack["clientMessageId"], ack["roomId"], ack["seq"], ack["duplicate"]) == (
                "c-first",
                room,
                1,
                False,
            )
            uuid.UUID(ack["messageId"])
            assert ack["createdAt"].endswith("Z")
            for sock in (b_sock, a_other):
                frame = await sock.next_of_type("message")
                message = frame["message"]
                assert message == {
                    "id": ack["messageId"],
                    "roomId": room,
                    "seq": 1,
                    "senderId": alice.id,
                    "senderHandle": alice.handle,
                    "clientMessageId": "c-first",
                    "body": "hello @bob",
                    "createdAt": message["createdAt"],
                    "editedAt": None,
                    "deletedAt": None,
                }
            second = await b_sock.request(
                {"action": "sendMessage", "roomId": room, "clientMessageId": "c-2", "body": "hi"}
            )
            assert second["seq"] == 2  # one more, no gap
            # The HTTP API returns the same message object.
            page = await alice.api.request("GET", f"/rooms/{room}/messages")
            assert page["messages"][0]["id"] == ack["messageId"]
            assert [m["seq"] for m in page["messages"]] == [1, 2]
            assert page["lastSeq"] == 2

    run(scenario)


def test_resending_a_client_message_id_returns_the_original_ack_and_delivers_nothing_again(
    e2e_target: Target,
) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            _, a_sock, _, b_sock, room = await _two_in_a_room(w)
            frame = {"action": "sendMessage", "roomId": room, "clientMessageId": "c-lost-ack", "body": "once"}
            first = await a_sock.request(frame)
            again = await a_sock.request(frame)
            assert again["duplicate"] is True
            assert {k: again[k] for k in ("seq", "messageId", "createdAt")} == {
                k: first[k] for k in ("seq", "messageId", "createdAt")
            }
            await b_sock.next_of_type("message")
            await b_sock.request({"action": "ping"})  # anything posted before the pong is in
            assert len(b_sock.of_type("message")) == 1
            resumed = await a_sock.request({"action": "resume", "roomId": room, "sinceSeq": 0})
            assert [m["body"] for m in resumed["messages"]] == ["once"]

    run(scenario)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("   ", "invalid_body"),
        ("", "invalid_body"),
        ("bell\x07", "invalid_body"),
        ("x" * 4001, "body_too_long"),
    ],
    ids=["blank", "empty", "control-character", "too-long"],
)
def test_a_bad_body_is_refused(e2e_target: Target, body: str, code: str) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            _, sock, _, _, room = await _two_in_a_room(w)
            body_ = "x" * (w.limits.max_message_chars + 1) if code == "body_too_long" else body
            frame = {"action": "sendMessage", "roomId": room, "clientMessageId": "c-bad", "body": body_}
            reply = await sock.request(frame)
            # An empty body may be caught by the frame schema first (both documented refusals).
            allowed = {code, "invalid_frame"} if body == "" else {code}
            assert reply["type"] == "error", reply
            assert reply["code"] in allowed, reply
            if reply["code"] == "body_too_long":
                assert reply["max"] == w.limits.max_message_chars
            ok = await sock.request(
                {
                    "action": "sendMessage",
                    "roomId": room,
                    "clientMessageId": "c-ok",
                    "body": "x" * w.limits.max_message_chars,
                }
            )
            assert ok["type"] == "ack"  # exactly the limit is fine

    run(scenario)


@pytest.mark.parametrize(
    "client_message_id", ["has space", "x" * 201, "tab\there"], ids=["space", "201", "tab"]
)
def test_a_bad_client_message_id_is_refused(e2e_target: Target, client_message_id: str) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            _, sock, _, _, room = await _two_in_a_room(w)
            reply = await sock.request(
                {"action": "sendMessage", "roomId": room, "clientMessageId": client_message_id, "body": "hi"}
            )
            assert reply["type"] == "error", reply
            assert reply["code"] in ("invalid_client_message_id", "invalid_frame"), reply
            await _still_open(sock)

    run(scenario)


def test_a_client_message_id_reused_in_another_room_is_refused(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, sock, bob, _, room = await _two_in_a_room(w)
            other = await w.room(alice, bob)
            frame = {"action": "sendMessage", "roomId": room, "clientMessageId": "c-twice", "body": "a"}
            assert (await sock.request(frame))["type"] == "ack"
            reply = await sock.request({**frame, "roomId": other})
            _error(reply, "client_message_id_reused")

    run(scenario)


def test_membership_refusals_not_a_member_and_room_not_found(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, _, _, _, public = await _two_in_a_room(w)
            private = await w.room(alice, kind="private")
            carol = await w.user("carol")
            sock = await carol.socket()
            for room, code in (
                (public, "not_a_member"),
                (private, "room_not_found"),
                (str(uuid.uuid4()), "room_not_found"),
            ):
                send = {"action": "sendMessage", "roomId": room, "clientMessageId": f"c-{code}", "body": "hi"}
                _error(await sock.request(send), code)
                _error(await sock.request({"action": "joinRoom", "roomId": room}), code)
                _error(await sock.request({"action": "resume", "roomId": room, "sinceSeq": 0}), code)
            await _still_open(sock)

    run(scenario)


# --- edit, delete -----------------------------------------------------------------------------------


def test_edit_and_delete_reply_and_broadcast_and_refuse_as_documented(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            _, a_sock, _, b_sock, room = await _two_in_a_room(w)
            await a_sock.request(
                {"action": "sendMessage", "roomId": room, "clientMessageId": "c-e", "body": "draft"}
            )

            # Someone else may neither edit nor delete it.
            _error(
                await b_sock.request({"action": "editMessage", "roomId": room, "seq": 1, "body": "mine now"}),
                "not_author",
            )
            _error(await b_sock.request({"action": "deleteMessage", "roomId": room, "seq": 1}), "not_author")
            _error(
                await a_sock.request({"action": "editMessage", "roomId": room, "seq": 99, "body": "x"}),
                "message_not_found",
            )
            _error(
                await a_sock.request({"action": "deleteMessage", "roomId": room, "seq": 99}),
                "message_not_found",
            )

            edited = await a_sock.request(
                {"action": "editMessage", "roomId": room, "seq": 1, "body": "final"}
            )
            assert edited["type"] == "messageEdited", edited
            assert (edited["message"]["seq"], edited["message"]["body"]) == (1, "final")
            assert edited["message"]["editedAt"] is not None
            seen = await b_sock.next_of_type("messageEdited")
            assert seen["message"]["body"] == "final"

            deleted = await a_sock.request({"action": "deleteMessage", "roomId": room, "seq": 1})
            assert deleted["type"] == "messageDeleted", deleted
            assert (deleted["message"]["seq"], deleted["message"]["body"]) == (1, None)
            assert deleted["message"]["deletedAt"] is not None
            seen = await b_sock.next_of_type("messageDeleted")
            assert (seen["message"]["seq"], seen["message"]["body"]) == (1, None)

            _error(
                await a_sock.request({"action": "editMessage", "roomId": room, "seq": 1, "body": "undo"}),
                "message_deleted",
            )
            # The tombstone keeps its seq: resume and history include it with body null.
            resumed = await b_sock.request({"action": "resume", "roomId": room, "sinceSeq": 0})
            assert [(m["seq"], m["body"]) for m in resumed["messages"]] == [(1, None)]

    run(scenario)


# --- joinRoom, leaveRoom, typing --------------------------------------------------------------------


def test_typing_reaches_only_connections_that_joined_the_room_and_never_the_sender(
    e2e_target: Target,
) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, a_sock, bob, b_sock, room = await _two_in_a_room(w)
            carol = await w.user("carol")
            await carol.api.join_room(room)
            c_sock = await carol.socket()  # a member that did NOT joinRoom
            joined = await b_sock.request({"action": "joinRoom", "roomId": room})
            assert (joined["type"], joined["roomId"]) == ("joined", room)
            await a_sock.request({"action": "joinRoom", "roomId": room})

            await a_sock.send({"action": "typing", "roomId": room})  # isTyping defaults to true
            typing = await b_sock.next_of_type("typing")
            assert typing == {
                "type": "typing",
                "roomId": room,
                "userId": alice.id,
                "handle": alice.handle,
                "isTyping": True,
            }
            await a_sock.send({"action": "typing", "roomId": room, "isTyping": False})
            stopped = await b_sock.next_of_type("typing", where=lambda f: f["isTyping"] is False)
            assert stopped["userId"] == alice.id

            left = await b_sock.request({"action": "leaveRoom", "roomId": room})
            assert (left["type"], left["roomId"]) == ("left", room)
            await a_sock.send({"action": "typing", "roomId": room})
            for sock in (a_sock, b_sock, c_sock):
                await sock.request({"action": "ping"})
            assert len(b_sock.of_type("typing")) == 2  # nothing after leaveRoom
            assert a_sock.of_type("typing") == []  # never back to the sender
            assert c_sock.of_type("typing") == []  # not joined: no typing
            assert bob.id != carol.id

    run(scenario)


# --- markRead ---------------------------------------------------------------------------------------


def test_mark_read_moves_forward_only_up_to_the_last_message_and_tells_other_devices(
    e2e_target: Target,
) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, a_sock, bob, b_sock, room = await _two_in_a_room(w)
            for i in range(3):
                await a_sock.request(
                    {"action": "sendMessage", "roomId": room, "clientMessageId": f"c-{i}", "body": f"m{i}"}
                )
            b_phone = await (await w.device(bob)).socket()

            read = await b_sock.request({"action": "markRead", "roomId": room, "seq": 2})
            assert {k: read[k] for k in ("type", "roomId", "seq")} == {
                "type": "read",
                "roomId": room,
                "seq": 2,
            }
            echoed = await b_phone.next_of_type("read")
            assert (echoed["roomId"], echoed["seq"]) == (room, 2)

            back = await b_sock.request({"action": "markRead", "roomId": room, "seq": 1})
            assert back["seq"] == 2  # never back
            past = await b_sock.request({"action": "markRead", "roomId": room, "seq": 50})
            assert past["seq"] == 3  # never past the last message
            info = await bob.api.room(room)
            assert (info.last_read_seq, info.unread) == (3, 0)
            assert alice.id not in (bob.id,)

    run(scenario)


# --- resume -----------------------------------------------------------------------------------------


def test_resume_pages_oldest_first_and_refuses_a_position_beyond_the_room(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            _, a_sock, _, b_sock, room = await _two_in_a_room(w)
            for i in range(5):
                await a_sock.request(
                    {"action": "sendMessage", "roomId": room, "clientMessageId": f"c-{i}", "body": f"m{i}"}
                )

            page = await b_sock.request({"action": "resume", "roomId": room, "sinceSeq": 1, "limit": 2})
            assert page["type"] == "resumed"
            assert (
                page["roomId"],
                page["sinceSeq"],
                page["more"],
                page["nextSinceSeq"],
                page["lastSeq"],
            ) == (
                room,
                1,
                True,
                3,
                5,
            )
            assert [m["seq"] for m in page["messages"]] == [2, 3]
            rest = await b_sock.request(
                {"action": "resume", "roomId": room, "sinceSeq": page["nextSinceSeq"]}
            )
            assert ([m["seq"] for m in rest["messages"]], rest["more"]) == ([4, 5], False)
            default = await b_sock.request({"action": "resume", "roomId": room, "sinceSeq": 0})
            assert [m["body"] for m in default["messages"]] == [f"m{i}" for i in range(5)]

            beyond = _error(
                await b_sock.request({"action": "resume", "roomId": room, "sinceSeq": 6}), "seq_beyond_last"
            )
            assert beyond["lastSeq"] == 5
            await _still_open(b_sock)

    run(scenario)
