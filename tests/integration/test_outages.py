"""Outages answer as documented, fast (issue 9 §5; docs/protocol.md "Outages"): with Redis/Valkey
down, hung or full (``noeviction``: "OOM command not allowed") and with Postgres down, ``$connect``
answers 503, frames answer an ``unavailable`` error frame with ``retryAfterMs`` (the connection
stays), HTTP answers 503 -- one rule for all (chatflow.errors.dependency_outage) -- within the
documented bound, and no acknowledged message is lost.

Each test runs the real handlers against a PRIVATE server it starts, breaks and restarts
(tests/support/private_servers.py); the machine's shared Postgres/Redis are never touched.

The elapsed-time checks are the documented bound (2 s) plus slack for this shared 2-core machine:
what they catch is the old behaviour (a dead pool waited out for 5 s, a hung Redis retried ~30 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
import redis

from chatflow.adapters.postgres.migrate import migrate
from chatflow.domain.identity import Identity
from tests.conftest import runtime_url
from tests.support.identity import http_client
from tests.support.private_servers import (
    NetworkNamespace,
    PrivatePostgres,
    PrivateRedis,
    network_namespace,
    network_namespaces_available,
    private_postgres,
    private_redis,
)
from tests.support.rooms import ApiUser, insert_user
from tests.support.ws_harness import WsHarness, ws_harness

DB = psycopg.Connection[dict[str, Any]]
BOUND_S = 2.0  # docs/protocol.md, "Outages"
SLACK_S = 1.0  # scheduling on a loaded shared machine; a regression overshoots by seconds


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def _send(ws: WsHarness, cid: str, room_id: UUID, cmid: str, body: str = "hi") -> Any:
    frame = {"action": "sendMessage", "roomId": str(room_id), "clientMessageId": cmid, "body": body}
    return ws.send(cid, {**frame, "requestId": f"r-{cmid}"})


def _assert_unavailable(reply: Any, elapsed: float, action: str) -> None:
    print(f"outage answer: {action} {reply.get('code')} after {elapsed:.3f} s")  # pytest -s
    assert reply["type"] == "error", reply
    assert reply["code"] in ("unavailable", "cache_unavailable"), reply
    assert reply["retryAfterMs"] == 1000
    assert reply["action"] == action
    assert elapsed < BOUND_S + SLACK_S, f"{action} answered after {elapsed:.2f} s"


def _assert_refused_503(response: dict[str, Any], elapsed: float) -> None:
    print(f"outage answer: $connect {response['statusCode']} after {elapsed:.3f} s")  # pytest -s
    assert response["statusCode"] == 503, response
    assert elapsed < BOUND_S + SLACK_S, f"$connect answered after {elapsed:.2f} s"


def _history(ws: WsHarness, identity: Identity, room_id: UUID) -> list[tuple[int, str | None]]:
    page = ws.container.messages.history(identity, room_id, after=0, limit=100)
    return [(m.seq, m.client_message_id) for m in page.messages]


# --- Redis / Valkey ------------------------------------------------------------------------------


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
def on_private_redis(
    redis_server: PrivateRedis, chatflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[WsHarness]:
    with ws_harness(monkeypatch, {"REDIS_URL": redis_server.url}) as harness:
        yield harness


def _room(ws: WsHarness, owner: Identity, *others: Identity) -> UUID:
    room = ws.container.rooms.create_channel(owner, "public", f"outage-{uuid4().hex[:8]}").room
    for other in others:
        ws.container.rooms.join(other, room.id)
    return room.id


def _alice_connected_in_a_room_with_bob(ws: WsHarness, db: DB) -> tuple[Identity, Identity, UUID, str]:
    """Two new users in a new room; Alice connected (her connection id last)."""
    alice, bob = insert_user(db), insert_user(db)
    room_id = _room(ws, alice, bob)
    return alice, bob, room_id, ws.connected(alice)


def test_redis_down_refuses_handshakes_with_503_and_frames_with_unavailable(
    on_private_redis: WsHarness, redis_server: PrivateRedis, db: DB
) -> None:
    ws = on_private_redis
    alice, bob, room_id, a = _alice_connected_in_a_room_with_bob(ws, db)
    assert _send(ws, a, room_id, "before")["type"] == "ack"

    redis_server.stop()
    (_, response), elapsed = timed(lambda: ws.connect(bob))
    _assert_refused_503(response, elapsed)
    reply, elapsed = timed(lambda: _send(ws, a, room_id, "during"))
    _assert_unavailable(reply, elapsed, "sendMessage")
    assert reply["requestId"] == "r-during"
    reply, elapsed = timed(lambda: ws.send(a, {"action": "ping"}))
    _assert_unavailable(reply, elapsed, "ping")
    reply, elapsed = timed(lambda: ws.send(a, {"action": "joinRoom", "roomId": str(room_id)}))
    _assert_unavailable(reply, elapsed, "joinRoom")
    # HTTP: the same rule, 503 with Retry-After, for a route that needs Redis (history reads
    # through to Postgres and keeps answering: the caches are an optimisation there).
    api = ApiUser(http_client(), alice)
    got, elapsed = timed(lambda: api.get(f"/rooms/{room_id}/presence"))
    assert got.status == 503, got.body
    assert got.json["error"]["code"] in ("unavailable", "cache_unavailable")
    assert got.headers.get("retry-after") == "1"
    assert elapsed < BOUND_S + SLACK_S
    assert api.get(f"/rooms/{room_id}/messages").status == 200

    # Back (empty: no persistence): the unacknowledged send is resent and stored once; the
    # acknowledged one was never lost.
    redis_server.start()
    a2 = ws.connected(alice)
    ack = _send(ws, a2, room_id, "during")
    assert (ack["type"], ack["duplicate"]) == ("ack", False)
    assert _history(ws, alice, room_id) == [(1, "before"), (2, "during")]


def test_hung_redis_is_answered_within_the_bound(
    on_private_redis: WsHarness, redis_server: PrivateRedis, db: DB
) -> None:
    ws = on_private_redis
    alice, bob, room_id, a = _alice_connected_in_a_room_with_bob(ws, db)
    redis_server.pause()  # accepts connections, answers nothing: only timeouts end the wait
    try:
        reply, elapsed = timed(lambda: _send(ws, a, room_id, "hung"))
        _assert_unavailable(reply, elapsed, "sendMessage")
        (_, response), elapsed = timed(lambda: ws.connect(bob))
        _assert_refused_503(response, elapsed)
    finally:
        redis_server.resume()
    assert _send(ws, a, room_id, "hung")["type"] == "ack"  # answered again once it is back
    assert _history(ws, alice, room_id) == [(1, "hung")]


def test_full_valkey_with_noeviction_answers_unavailable(
    chatflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, db: DB
) -> None:
    with (
        private_redis(maxmemory="3mb", maxmemory_policy="noeviction") as server,
        ws_harness(monkeypatch, {"REDIS_URL": server.url}) as ws,
    ):
        alice, bob, room_id, a = _alice_connected_in_a_room_with_bob(ws, db)
        assert _send(ws, a, room_id, "before")["type"] == "ack"
        filler = server.client()
        with pytest.raises(redis.ResponseError, match="maxmemory"):  # noqa: PT012 -- fill until refused
            for i in range(10_000):  # bounded: 3 MB fill up long before
                filler.set(f"junk:{i}", "x" * 4096)
        # Well past the limit, not at its edge (freed client buffers would let small writes in).
        filler.config_set("maxmemory", "1mb")
        reply, elapsed = timed(lambda: _send(ws, a, room_id, "full"))
        _assert_unavailable(reply, elapsed, "sendMessage")
        assert "OOM" not in reply["message"]  # the client learns "unavailable", not our internals
        (_, response), elapsed = timed(lambda: ws.connect(bob))
        _assert_refused_503(response, elapsed)

        filler.flushdb()  # the operator frees memory: the resend goes through, once
        filler.config_set("maxmemory", "3mb")
        filler.close()
        ack = _send(ws, a, room_id, "full")
        assert (ack["type"], ack["duplicate"]) == ("ack", False)
        assert _history(ws, alice, room_id) == [(1, "before"), (2, "full")]


# --- Postgres ------------------------------------------------------------------------------------


@pytest.fixture
def postgres_server() -> Iterator[tuple[PrivatePostgres, str]]:
    with private_postgres() as server:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE chatflow")
        migrate(server.url("chatflow"))
        yield server, server.url("chatflow")


def test_postgres_down_answers_unavailable_fast_and_loses_no_acknowledged_message(
    postgres_server: tuple[PrivatePostgres, str],
    chatflow_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, owner_url = postgres_server
    with psycopg.connect(owner_url, autocommit=True, row_factory=psycopg.rows.dict_row) as db:
        alice, bob = insert_user(db), insert_user(db)
    with ws_harness(monkeypatch, {"DATABASE_URL": runtime_url(owner_url)}) as ws:
        room_id = _room(ws, alice)
        a = ws.connected(alice)
        acked = [_send(ws, a, room_id, f"before-{i}") for i in range(3)]
        assert [r["seq"] for r in acked] == [1, 2, 3]

        server.stop()
        for attempt in range(4):  # the pooled connections (broken), then waits for a new one
            reply, elapsed = timed(lambda: _send(ws, a, room_id, "during"))
            _assert_unavailable(reply, elapsed, "sendMessage")
            assert attempt >= 0
        (_, response), elapsed = timed(lambda: ws.connect(bob))  # bob's status is not cached
        _assert_refused_503(response, elapsed)
        got, elapsed = timed(lambda: ApiUser(http_client(), alice).get(f"/rooms/{room_id}/messages"))
        assert got.status == 503, got.body
        assert elapsed < BOUND_S + SLACK_S

        server.start()
        deadline = time.monotonic() + 20
        ack = _send(ws, a, room_id, "during")
        while ack["type"] != "ack" and time.monotonic() < deadline:  # the pool reconnects
            time.sleep(0.2)
            ack = _send(ws, a, room_id, "during")
        assert (ack["type"], ack["seq"], ack["duplicate"]) == ("ack", 4, False)
        with psycopg.connect(owner_url) as check:  # what the database holds, not a pool's view
            stored = check.execute(
                "SELECT seq, client_message_id FROM messages WHERE room_id = %s ORDER BY seq", (room_id,)
            ).fetchall()
        assert stored == [
            (1, "before-0"),
            (2, "before-1"),
            (3, "before-2"),
            (4, "during"),
        ]


# --- Postgres cut off by the network ---------------------------------------------------------------


@pytest.fixture
def postgres_across_a_network() -> Iterator[tuple[PrivatePostgres, NetworkNamespace, str]]:
    """A private Postgres in its own network namespace, reached over a veth pair whose link the
    test cuts: the case where the server neither answers nor resets (a partition, a lost host)."""
    if not network_namespaces_available():
        pytest.skip("needs root and iproute2 for a network namespace")
    with network_namespace() as netns, private_postgres(netns) as server:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE chatflow")
        migrate(server.url("chatflow"))
        yield server, netns, server.url("chatflow")


def test_postgres_cut_off_mid_connection_answers_unavailable_within_the_bound(
    postgres_across_a_network: tuple[PrivatePostgres, NetworkNamespace, str],
    chatflow_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pooled connection whose server vanished: without a client-side bound the query waits for
    TCP to give up (~15 min of retransmissions); with ``db_tcp_user_timeout_ms`` it is answered
    ``unavailable`` within the bound, and nothing acknowledged is lost."""
    _, netns, owner_url = postgres_across_a_network
    with psycopg.connect(owner_url, autocommit=True, row_factory=psycopg.rows.dict_row) as db:
        alice = insert_user(db)
    with ws_harness(monkeypatch, {"DATABASE_URL": runtime_url(owner_url)}) as ws:
        room_id = _room(ws, alice)
        a = ws.connected(alice)
        assert [_send(ws, a, room_id, f"before-{i}")["seq"] for i in range(2)] == [1, 2]

        netns.cut()
        pool = ThreadPoolExecutor(max_workers=1)  # a hang must fail the test, not stall the suite
        try:
            for _attempt in ("on the pooled connection", "waiting for a new one"):
                started = time.monotonic()
                reply = pool.submit(_send, ws, a, room_id, "during").result(timeout=BOUND_S + SLACK_S + 10)
                _assert_unavailable(reply, time.monotonic() - started, "sendMessage")
        finally:
            netns.restore()
            pool.shutdown(wait=True)

        deadline = time.monotonic() + 20
        ack = _send(ws, a, room_id, "during")
        while ack["type"] != "ack" and time.monotonic() < deadline:  # the pool reconnects
            time.sleep(0.2)
            ack = _send(ws, a, room_id, "during")
        assert (ack["type"], ack["seq"]) == ("ack", 3)
    with psycopg.connect(owner_url) as check:
        stored = check.execute(
            "SELECT seq, client_message_id FROM messages WHERE room_id = %s ORDER BY seq", (room_id,)
        ).fetchall()
    assert stored == [(1, "before-0"), (2, "before-1"), (3, "during")]
