"""``requestId`` as docs/protocol.md says: a 1-64 character string is echoed on the reply; any
other value (numbers, "", 65 characters, lists, objects, booleans, null) is not echoed and the
frame is still processed -- for every action, through the real WebSocket handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest

from chatflow.domain.identity import Identity
from chatflow.domain.messages import MessageService
from chatflow.domain.rooms import RoomService
from chatflow.ws.protocol import ACTIONS
from tests.support.ws_harness import WsHarness, ws_harness

UNUSABLE: list[Any] = [7, 0, -1, 1.5, "", "r" * 65, [], ["r-1"], {}, {"id": "r-1"}, True, False, None]


@pytest.fixture
def ws(chatflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[WsHarness]:
    # Every frame of a case must reach its action (rate limits have their own tests).
    names = ("RATE_MESSAGES_PER_10S", "RATE_TYPING_PER_10S", "RATE_REQUESTS_PER_10S")
    with ws_harness(monkeypatch, dict.fromkeys(names, "100000")) as harness:
        yield harness


class Scene:
    """Alice (connected) and Bob (connected, subscribed) in Alice's room, with the services to
    set up what each frame needs."""

    def __init__(self, ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID) -> None:
        self.ws, self.alice, self.room = ws, alice, str(room_id)
        self.rooms: RoomService = ws.container.rooms
        self.messages: MessageService = ws.container.messages
        self.cid = ws.connected(alice)
        self.bob_cid = ws.connected(bob)
        assert ws.send(self.bob_cid, {"action": "joinRoom", "roomId": self.room})["type"] == "joined"

    def new_message(self) -> int:
        message, _ = self.messages.send(self.alice, UUID(self.room), f"c-{uuid4().hex[:8]}", "hello")
        return message.seq


# action -> (frame for this case, check of the reply that proves the frame was processed)
Case = tuple[dict[str, Any], Callable[[Any], None]]


def _case(action: str, scene: Scene) -> Case:
    room = scene.room

    def replied(type_: str, **fields: Any) -> Callable[[Any], None]:
        def check(reply: Any) -> None:
            assert reply is not None
            assert reply["type"] == type_, reply
            for name, value in fields.items():
                assert reply[name] == value, reply

        return check

    if action == "ping":
        return {"action": "ping"}, replied("pong")
    if action == "sendMessage":
        cmid = f"c-{uuid4().hex[:8]}"
        return (
            {"action": action, "roomId": room, "clientMessageId": cmid, "body": "hi"},
            replied("ack", clientMessageId=cmid),
        )
    if action == "editMessage":
        seq = scene.new_message()
        return {"action": action, "roomId": room, "seq": seq, "body": "edited"}, replied("messageEdited")
    if action == "deleteMessage":
        seq = scene.new_message()
        return {"action": action, "roomId": room, "seq": seq}, replied("messageDeleted")
    if action == "joinRoom":
        return {"action": action, "roomId": room}, replied("joined", roomId=room)
    if action == "leaveRoom":
        return {"action": action, "roomId": room}, replied("left", roomId=room)
    if action == "markRead":
        seq = scene.new_message()
        return {"action": action, "roomId": room, "seq": seq}, replied("read", seq=seq)
    if action == "resume":
        return {"action": action, "roomId": room, "sinceSeq": 0}, replied("resumed")
    if action == "presence":
        return {"action": action, "roomId": room}, replied("presenceSnapshot", roomId=room)
    if action == "typing":
        scene.ws.clear()

        def bob_saw_it(reply: Any) -> None:
            assert reply is None, reply  # typing has no reply: Bob hearing it proves it ran
            assert scene.ws.received(scene.bob_cid, "typing"), "typing frame not delivered"

        return {"action": action, "roomId": room}, bob_saw_it
    raise AssertionError(f"no case for action {action!r}: add one")


@pytest.mark.parametrize("action", list(ACTIONS))
def test_unusable_request_id_is_not_echoed_and_the_frame_is_processed(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID, action: str
) -> None:
    scene = Scene(ws, alice, bob, room_id)
    for request_id in UNUSABLE:
        frame, processed = _case(action, scene)
        reply = ws.send(scene.cid, {**frame, "requestId": request_id})
        processed(reply)
        assert reply is None or "requestId" not in reply, (request_id, reply)


@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_request_id_of_1_to_64_characters_is_echoed(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID, action: str
) -> None:
    scene = Scene(ws, alice, bob, room_id)
    for request_id in ("r", "req-42", "x" * 64):
        frame, processed = _case(action, scene)
        reply = ws.send(scene.cid, {**frame, "requestId": request_id})
        processed(reply)
        if reply is not None:
            assert reply["requestId"] == request_id, reply


def test_an_error_frame_echoes_a_usable_request_id_only(ws: WsHarness, alice: Identity) -> None:
    cid = ws.connected(alice)
    missing_room = {"action": "joinRoom", "roomId": str(uuid4())}
    assert ws.send(cid, {**missing_room, "requestId": "j-1"})["requestId"] == "j-1"
    refused = ws.send(cid, {**missing_room, "requestId": 5})
    assert refused["type"] == "error"
    assert refused["code"] == "room_not_found"  # processed (not invalid_frame), not echoed
    assert "requestId" not in refused
