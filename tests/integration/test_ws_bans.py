"""A ban through the real HTTP route closes the user's live WebSockets (DeleteConnection on the
local @connections endpoint) and the next $connect is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from chatflow.domain.identity import Identity
from chatflow.domain.rooms import RoomService
from tests.support.apigw import http_event, lambda_context
from tests.support.lambdas import load_handler
from tests.support.rooms import insert_user
from tests.support.ws_harness import WsHarness, ws_harness

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def ws(chatflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[WsHarness]:
    with ws_harness(monkeypatch) as harness:
        yield harness


def _ban(admin: Identity, user_id: UUID) -> dict[str, Any]:
    event = http_event(
        "POST",
        f"/admin/users/{user_id}/ban",
        authorizer_context={k: str(v) for k, v in admin.to_context().items()},
    )
    response: dict[str, Any] = load_handler("http_api")(event, lambda_context("http_api"))
    return response


def test_ban_closes_every_live_socket_and_refuses_new_ones(rooms: RoomService, ws: WsHarness, db: DB) -> None:
    admin = insert_user(db, role="admin")
    troll = insert_user(db)
    friend = insert_user(db)
    room = rooms.create_channel(friend, "public", f"ban-{uuid4().hex[:8]}").room
    rooms.join(troll, room.id)
    troll_sockets = [ws.connected(troll) for _ in range(3)]
    friend_cid = ws.connected(friend)
    ws.clear()

    response = _ban(admin, troll.user_id)
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["sessionsClosed"] == 3

    for cid in troll_sockets:
        assert ws.backend.closed_by_api(cid)  # DeleteConnection reached the gateway
    assert not ws.backend.closed_by_api(friend_cid)  # nobody else is kicked
    assert ws.container.connection_registry.connections_of([troll.user_id]) == []
    presence = ws.received(friend_cid, "presence")
    assert [(f["userId"], f["status"]) for f in presence] == [(str(troll.user_id), "offline")]

    # The authorizer's cached "allow" does not help: $connect re-checks the ban.
    _, refused = ws.connect(troll)
    assert refused["statusCode"] == 403
    # Messages sent to the room no longer reach the banned user's (closed) sockets.
    reply = ws.send(
        friend_cid,
        {"action": "sendMessage", "roomId": str(room.id), "clientMessageId": "after-ban", "body": "x"},
    )
    assert reply["type"] == "ack"
    assert all(ws.received(cid, "message") == [] for cid in troll_sockets)


def test_ban_of_a_user_without_sockets_closes_nothing(ws: WsHarness, db: DB) -> None:
    admin = insert_user(db, role="admin")
    quiet = insert_user(db)
    response = _ban(admin, quiet.user_id)
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["sessionsClosed"] == 0


def test_frames_from_a_socket_that_could_not_be_closed_are_refused(
    rooms: RoomService, ws: WsHarness, db: DB, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = insert_user(db, role="admin")
    troll = insert_user(db)
    room = rooms.create_channel(troll, "public", f"ban2-{uuid4().hex[:8]}").room
    cid = ws.connected(troll)
    # No terminator this time (as if DeleteConnection had failed): the socket stays open...
    user_service = ws.container.users
    monkeypatch.setattr(user_service, "session_terminator", None)
    user_service.ban(admin, troll.user_id)
    assert not ws.backend.closed_by_api(cid)
    # ...but every frame re-checks the account.
    reply = ws.send(
        cid, {"action": "sendMessage", "roomId": str(room.id), "clientMessageId": "x", "body": "y"}
    )
    assert reply["type"] == "error"
    assert reply["code"] == "account_disabled"
    count = db.execute("SELECT count(*) AS n FROM messages WHERE room_id = %s", (room.id,)).fetchone()
    assert count == {"n": 0}


def test_admin_cli_delete_closes_the_users_live_sockets(ws: WsHarness, db: DB) -> None:
    """The admin CLI builds the functions' container, so its users service closes live sessions
    like the HTTP API's ban does (it used to leave them open until their next frame)."""
    from chatflow.admin_cli import main

    leaving = insert_user(db)
    sockets = [ws.connected(leaving) for _ in range(2)]
    assert main(["delete", leaving.handle]) == 0
    assert all(ws.backend.closed_by_api(cid) for cid in sockets)
    assert ws.container.connection_registry.connections_of([leaving.user_id]) == []
    _, refused = ws.connect(leaving)
    assert refused["statusCode"] == 403
