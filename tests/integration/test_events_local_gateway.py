"""The event side through the whole local gateway (make dev's stack): a message sent over a real
WebSocket is stored with its outbox row, flushed to the gateway's EventBridge emulator, routed by
the catalog's rules to the notifications and analytics functions (worker processes, invoked like
Lambda with real EventBridge envelopes), and read back over the HTTP API."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from websockets.asyncio.client import connect

from chatflow.domain.identity import Identity
from local_stack.gateway import GatewayConfig, RunningGateway, running_gateway
from tests.support.rooms import access_token, insert_user

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture(scope="module")
def gateway(chatflow_env: dict[str, str]) -> Iterator[RunningGateway]:
    import os

    env = {**chatflow_env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    with running_gateway(GatewayConfig(env=env)) as running:
        yield running


def _http(gw: RunningGateway, method: str, path: str, who: Identity, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        gw.http_url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {access_token(who)}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _eventually(check: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll until ``check`` returns something truthy (delivery is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_message_over_websocket_notifies_the_offline_member_and_is_counted(
    gateway: RunningGateway, db: DB
) -> None:
    owner = insert_user(db)
    reader = insert_user(db)
    admin = insert_user(db, role="admin")
    status, room = _http(gateway, "POST", "/rooms", owner, {"kind": "public", "name": f"ev-{owner.handle}"})
    assert status == 201, room
    room_id = room["id"]
    assert _http(gateway, "POST", f"/rooms/{room_id}/join", reader)[0] == 200

    async def send() -> Any:
        async with connect(f"{gateway.ws_url}?token={access_token(owner)}") as ws:
            frame = {
                "action": "sendMessage",
                "roomId": room_id,
                "clientMessageId": "gw-1",
                "body": f"hello @{reader.handle}",
                "requestId": "r1",
            }
            await ws.send(json.dumps(frame))
            while True:
                answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if answer.get("requestId") == "r1":
                    return answer

    ack = asyncio.run(send())
    assert ack.get("type") != "error", ack

    def unread() -> Any:
        _, body = _http(gateway, "GET", "/notifications", reader)
        return [r for r in body["rooms"] if r["roomId"] == room_id]

    rooms = _eventually(unread)
    assert [(r["unreadMessages"], r["unreadMentions"]) for r in rooms] == [(1, 1)]
    _, body = _http(gateway, "GET", "/notifications", reader)
    assert [(i["kind"], i["actorHandle"]) for i in body["items"]] == [("mention", owner.handle)]

    def counted() -> Any:
        _, report = _http(gateway, "GET", "/admin/analytics", admin)
        today = report["daily"][-1]
        return today if today["messagesCreated"] >= 1 and today["connectionsOpened"] >= 1 else None

    assert _eventually(counted)
    assert _http(gateway, "GET", "/admin/analytics", owner)[0] == 403
