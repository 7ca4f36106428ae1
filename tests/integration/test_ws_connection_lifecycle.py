"""$connect / $disconnect / ping / $default through the real handlers.

Real Postgres + Redis; @connections and PutEvents go to the local endpoints over HTTP
(tests/support/ws_harness.py).
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from chatflow.domain.identity import Identity
from chatflow.domain.rooms import RoomService
from chatflow.settings import get_settings
from local_stack.connections import new_connection_id
from tests.support.rooms import insert_user, set_status
from tests.support.ws_events import message_event
from tests.support.ws_harness import WsHarness

DB = psycopg.Connection[dict[str, Any]]


def _presence(ws: WsHarness, cid: str) -> list[tuple[str, str]]:
    return [(f["userId"], f["status"]) for f in ws.received(cid, "presence")]


def test_presence_announced_to_co_members_on_first_connect_and_last_disconnect(
    ws: WsHarness, db: DB, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    stranger = insert_user(db)
    bob_cid = ws.connected(bob)
    stranger_cid = ws.connected(stranger)

    a1 = ws.connected(alice)
    a2 = ws.connected(alice)  # second device: no second "online"
    assert _presence(ws, bob_cid) == [(str(alice.user_id), "online")]

    ws.disconnect(a1)  # one device left: still online
    assert _presence(ws, bob_cid) == [(str(alice.user_id), "online")]
    ws.disconnect(a2)
    assert _presence(ws, bob_cid) == [(str(alice.user_id), "online"), (str(alice.user_id), "offline")]
    # Someone who shares no room with alice hears nothing about her.
    assert _presence(ws, stranger_cid) == []
    # Presence events went to the bus as well (through the EventBridge adapter).
    assert ws.eventbridge.bus.wait_idle()
    online = [d["user_id"] for d in ws.recorder.details("user.online")]
    offline = [d["user_id"] for d in ws.recorder.details("user.offline")]
    assert online.count(str(alice.user_id)) == 1
    assert offline.count(str(alice.user_id)) == 1
    opened = [d["connection_id"] for d in ws.recorder.details("connection.opened")]
    assert {a1, a2} <= set(opened)


def test_connection_limit_refuses_the_sixth_connection_with_429(ws: WsHarness, alice: Identity) -> None:
    limit = get_settings().max_connections_per_user
    for _ in range(limit):
        ws.connected(alice)
    _, refused = ws.connect(alice)
    assert refused["statusCode"] == 429
    assert json.loads(refused["body"])["code"] == "too_many_connections"


def test_banned_user_is_refused_on_connect_with_403(ws: WsHarness, db: DB) -> None:
    banned = insert_user(db, status="banned")
    _, response = ws.connect(banned)
    assert response["statusCode"] == 403
    assert ws.container.connection_registry.online_user_ids([banned.user_id]) == set()


def test_connect_without_authorizer_context_is_refused(ws: WsHarness) -> None:
    _, response = ws.connect(None)  # type: ignore[arg-type]
    assert response["statusCode"] == 403


def test_ping_answers_pong_and_keeps_the_connection_registered(ws: WsHarness, alice: Identity) -> None:
    registry = ws.container.connection_registry
    cid = ws.connected(alice)
    reply = ws.send(cid, {"action": "ping", "requestId": "r-1"})
    assert reply["type"] == "pong"
    assert reply["requestId"] == "r-1"
    # A connection whose record expired (no $disconnect, long silence) is registered again.
    registry.unregister(alice.user_id, cid)
    assert ws.send(cid, {"action": "ping"})["type"] == "pong"
    assert registry.online_user_ids([alice.user_id]) == {alice.user_id}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json at all", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('{"action": "fly"}', "unknown_action"),
        ('{"hello": 1}', "unknown_action"),
        ("", "invalid_json"),
    ],
)
def test_default_route_answers_with_an_error_frame_naming_the_actions(
    ws: WsHarness, alice: Identity, raw: str, code: str
) -> None:
    cid = ws.connected(alice)
    reply = ws.send(cid, raw, route_key="$default")
    assert reply["type"] == "error"
    assert reply["code"] == code
    if code == "unknown_action":
        assert "sendMessage" in reply["validActions"]
        assert "sendMessage" in reply["message"]


def test_default_route_refuses_a_frame_larger_than_api_gateway_allows(ws: WsHarness, alice: Identity) -> None:
    cid = ws.connected(alice)
    reply = ws.send(cid, json.dumps({"action": "x", "pad": "a" * (128 * 1024)}), route_key="$default")
    assert reply["code"] == "frame_too_large"


def test_actions_match_the_catalog() -> None:
    from chatflow.ws.protocol import ACTIONS
    from infra.catalog import WS_ACTIONS, WS_ROUTES

    routed = {r.route_key for r in WS_ROUTES if not r.route_key.startswith("$")}
    assert set(ACTIONS) == routed == {*WS_ACTIONS, "ping"}
    assert all(
        r.route_response for r in WS_ROUTES if not r.route_key.startswith("$") or r.route_key == "$default"
    )


def test_event_builders_parse_with_powertools_models(alice: Identity) -> None:
    from aws_lambda_powertools.utilities.parser.models import (
        APIGatewayWebSocketConnectEventModel,
        APIGatewayWebSocketDisconnectEventModel,
        APIGatewayWebSocketMessageEventModel,
    )

    from tests.support.ws_events import connect_event, disconnect_event

    cid = new_connection_id()
    APIGatewayWebSocketConnectEventModel.model_validate(connect_event(alice, cid))
    msg = APIGatewayWebSocketMessageEventModel.model_validate(message_event(alice, cid, {"action": "ping"}))
    assert msg.request_context.route_key == "ping"
    APIGatewayWebSocketDisconnectEventModel.model_validate(disconnect_event(alice, cid))


def test_set_status_helper_is_available(db: DB, alice: Identity) -> None:
    set_status(db, alice.user_id, "active")


def test_presence_reaches_co_members_of_every_room_once(
    rooms: RoomService, ws: WsHarness, db: DB, alice: Identity
) -> None:
    bob, carol = insert_user(db), insert_user(db)
    r1 = rooms.create_channel(alice, "public", f"r1-{uuid4().hex[:8]}").room.id
    r2 = rooms.create_channel(alice, "private", f"r2-{uuid4().hex[:8]}").room.id
    r3 = rooms.create_channel(carol, "public", f"r3-{uuid4().hex[:8]}").room.id
    rooms.join(bob, r1)
    rooms.add_member(alice, r2, user_id=carol.user_id)
    rooms.join(alice, r3)  # carol shares two rooms with alice: still one announcement
    rooms.member_ids(r1)  # warm one room's cache; the others are read through
    batched = ws.container.room_directory.members_of([r1, r2, r3])
    assert {k: set(v) for k, v in batched.items()} == {r: set(rooms.member_ids(r)) for r in (r1, r2, r3)}

    b, c = ws.connected(bob), ws.connected(carol)
    ws.connected(alice)
    assert _presence(ws, b) == [(str(alice.user_id), "online")]
    assert _presence(ws, c) == [(str(alice.user_id), "online")]


def test_late_disconnect_after_a_410_cleanup_announces_offline_once(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    b = ws.connected(bob)
    a = ws.connected(alice)
    ws.backend.mark_gone(a)  # alice's device vanished
    ws.send(b, {"action": "sendMessage", "roomId": str(room_id), "clientMessageId": "z-1", "body": "hi"})
    assert _presence(ws, b)[-1] == (str(alice.user_id), "offline")  # found by the 410
    ws.disconnect(a)  # ...then API Gateway's late $disconnect arrives
    offline = [p for p in _presence(ws, b) if p == (str(alice.user_id), "offline")]
    assert len(offline) == 1
