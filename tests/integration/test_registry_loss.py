"""Registry loss does not silence sockets (docs/protocol.md, "Registry loss").

A private ``redis-server`` (a free port, no persistence, started and stopped here; the machine's
shared Redis is never touched) behind the real handlers: after FLUSHALL -- what a restart without
persistence or a failover to an empty replica leaves -- an open connection is live again from its
next frame of any kind (a chat action or a ping), and is told ``{"type": "resync"}`` so the client
re-joins and resumes its rooms.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from tests.support.private_servers import PrivateRedis, private_redis
from tests.support.rooms import insert_user
from tests.support.ws_harness import WsHarness, ws_harness

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture(name="private_redis")
def private_redis_fixture() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
def ws(
    chatflow_env: dict[str, str], private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WsHarness]:
    with ws_harness(monkeypatch, env={"REDIS_URL": private_redis.url}) as harness:
        yield harness


def _flushall(server: PrivateRedis) -> None:
    with closing(server.client()) as client:
        client.flushall()


def test_after_redis_loses_its_data_a_frame_makes_the_connection_live_again(
    ws: WsHarness, private_redis: PrivateRedis, db: DB
) -> None:
    alice, bob = insert_user(db), insert_user(db)
    room = ws.container.rooms.create_channel(alice, "public", f"loss-{uuid4().hex[:8]}").room
    ws.container.rooms.join(bob, room.id)
    a_cid, b_cid = ws.connected(alice), ws.connected(bob)
    registry = ws.container.connection_registry
    assert len(registry.connections_of([alice.user_id, bob.user_id])) == 2

    _flushall(private_redis)  # a restart without persistence / failover to an empty replica
    assert registry.connections_of([alice.user_id, bob.user_id]) == []
    ws.clear()

    # Bob's next chat frame: he is registered again, told to resync, and his message is stored.
    reply = ws.send(
        b_cid, {"action": "sendMessage", "roomId": str(room.id), "clientMessageId": "m1", "body": "hello?"}
    )
    assert reply["type"] == "ack", reply
    assert ws.received(b_cid, "resync") == [{"type": "resync", "reason": "registry_lost"}]
    assert [t.connection_id for t in registry.connections_of([bob.user_id])] == [b_cid]
    # Alice has not said anything since the loss: the worst case, she missed that frame...
    assert ws.received(a_cid, "message") == []

    # ...until her next frame of any kind (here her keep-alive ping): live again, told to resync
    # (the loss is still reported to her), and the missed message is in her resume.
    assert ws.send(a_cid, {"action": "ping"})["type"] == "pong"
    assert ws.received(a_cid, "resync") == [{"type": "resync", "reason": "registry_lost"}]
    resumed = ws.send(a_cid, {"action": "resume", "roomId": str(room.id), "sinceSeq": 0})
    assert [m["body"] for m in resumed["messages"]] == ["hello?"]
    reply = ws.send(
        b_cid, {"action": "sendMessage", "roomId": str(room.id), "clientMessageId": "m2", "body": "back"}
    )
    assert [f["message"]["body"] for f in ws.received(a_cid, "message")] == ["back"]

    # joinRoom works again on the re-registered connection (it answered connection_not_found).
    joined = ws.send(a_cid, {"action": "joinRoom", "roomId": str(room.id)})
    assert joined["type"] == "joined", joined


def test_a_connection_forgotten_by_expiry_is_told_to_resync_without_a_loss(ws: WsHarness, db: DB) -> None:
    user = insert_user(db)
    cid = ws.connected(user)
    registry = ws.container.connection_registry
    registry.unregister(user.user_id, cid)  # its record expired; Redis kept everything else
    ws.clear()
    assert ws.send(cid, {"action": "ping"})["type"] == "pong"
    assert ws.received(cid, "resync") == [{"type": "resync", "reason": "expired"}]
    assert [t.connection_id for t in registry.connections_of([user.user_id])] == [cid]
    assert ws.send(cid, {"action": "ping"})["type"] == "pong"
    assert ws.received(cid, "resync") == [{"type": "resync", "reason": "expired"}]  # only once


def test_after_a_restart_without_persistence_the_next_frames_make_connections_live_again(
    ws: WsHarness, private_redis: PrivateRedis, db: DB
) -> None:
    """The server process restarts empty on the same address. The handlers' pooled Redis
    connections are dead: a frame may first be answered ``unavailable`` (retry), never a lost
    socket; the next one re-registers the connection and tells it to resync."""
    user = insert_user(db)
    cid = ws.connected(user)
    # The server process restarts empty on the same port; the handlers' pooled connections die.
    with closing(private_redis.client()) as client:
        run_id = client.info("server")["run_id"]
    private_redis.stop()
    private_redis.start()
    with closing(private_redis.client()) as client:
        assert client.info("server")["run_id"] != run_id
    ws.clear()
    replies = [ws.send(cid, {"action": "ping"}) for _ in range(3)]
    assert [r["type"] for r in replies if r["type"] != "error"], replies
    assert all(r["type"] == "pong" or r.get("code") in ("unavailable", "cache_unavailable") for r in replies)
    assert ws.received(cid, "resync") == [{"type": "resync", "reason": "registry_lost"}]
    registry = ws.container.connection_registry
    assert [t.connection_id for t in registry.connections_of([user.user_id])] == [cid]
