"""sendMessage acks BEFORE the room's fan-out (issue 13 §3), without losing exactly-once delivery
or the order of a sender's messages: real ws_messages handler, Postgres, Redis and the local
@connections endpoint (tests/support/ws_harness.py)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

import pytest

from chatflow.adapters.redis_client import RedisConnection
from chatflow.adapters.redis_fanout_turns import RedisFanoutTurns
from chatflow.container import Container
from chatflow.domain.identity import Identity
from tests.support.apigw import lambda_context
from tests.support.lambdas import load_handler
from tests.support.ws_events import message_event
from tests.support.ws_harness import WsHarness

Post = Callable[[str, bytes], Awaitable[None]]


def _frame(room_id: UUID, client_id: str, body: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "action": "sendMessage",
        "roomId": str(room_id),
        "clientMessageId": client_id,
        "body": body,
        **extra,
    }


def _record_order(ws: WsHarness) -> list[tuple[str, dict[str, Any]]]:
    """Every post the gateway serves, in the order it served them (all connections)."""
    order: list[tuple[str, dict[str, Any]]] = []
    backend = ws.backend
    original: Post = backend.post

    async def post(connection_id: str, data: bytes) -> None:
        await original(connection_id, data)
        order.append((connection_id, json.loads(data)))

    backend.post = post  # type: ignore[method-assign]
    return order


def test_the_ack_is_posted_first_and_there_is_no_route_response(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    a_phone, a_laptop, b = ws.connected(alice), ws.connected(alice), ws.connected(bob)
    order = _record_order(ws)
    event = message_event(alice, a_phone, _frame(room_id, "af-1", requestId="r-1"))
    response = load_handler("ws_messages")(event, lambda_context("ws_messages"))

    assert response == {"statusCode": 200}  # nothing for API Gateway to send back
    first_cid, first = order[0]
    assert first_cid == a_phone
    assert first["type"] == "ack"
    assert first["seq"] == 1
    assert first["requestId"] == "r-1"
    # ... then the sender's other device and the other member, once each; never the sender.
    assert sorted(cid for cid, f in order[1:]) == sorted([a_laptop, b])
    assert all(f["type"] == "message" and f["message"]["seq"] == 1 for _, f in order[1:])


def test_a_resend_is_answered_with_the_original_ack_and_fans_out_nothing(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    a, b = ws.connected(alice), ws.connected(bob)
    first = ws.send(a, _frame(room_id, "af-2"))
    again = ws.send(a, _frame(room_id, "af-2"))
    assert again == {**first, "duplicate": True}
    assert len(ws.acks_posted(a)) == 1  # the resend's ack is the route response
    assert [f["message"]["seq"] for f in ws.received(b, "message")] == [first["seq"]]


def test_if_the_ack_cannot_be_posted_it_is_the_route_response(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    a, b = ws.connected(alice), ws.connected(bob)
    backend = ws.backend
    original: Post = backend.post

    async def post(connection_id: str, data: bytes) -> None:
        if connection_id == a:
            raise RuntimeError("the gateway fails on this connection")  # 500 three times
        await original(connection_id, data)

    backend.post = post  # type: ignore[method-assign]
    event = message_event(alice, a, _frame(room_id, "af-3"))
    response = load_handler("ws_messages")(event, lambda_context("ws_messages"))
    assert json.loads(response["body"])["type"] == "ack"
    assert len(ws.received(b, "message")) == 1


def test_a_senders_next_message_waits_for_the_previous_fan_out(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    """One sendMessage in flight per room (docs/protocol.md): the client sends message 2 as soon
    as message 1's ack arrives, while message 1's fan-out to Bob is still slow. Bob must still get
    1 before 2 -- the two invocations run concurrently, as two Lambda environments would."""
    a, b = ws.connected(alice), ws.connected(bob)
    backend = ws.backend
    original: Post = backend.post
    order: list[int] = []

    async def post(connection_id: str, data: bytes) -> None:
        frame = json.loads(data)
        if connection_id == b and frame["message"]["body"] == "one":
            await asyncio.sleep(0.4)  # message 1 reaches Bob slowly
        await original(connection_id, data)
        if connection_id == b:
            order.append(frame["message"]["seq"])

    backend.post = post  # type: ignore[method-assign]
    handler = load_handler("ws_messages")
    first = threading.Thread(
        target=handler,
        args=(message_event(alice, a, _frame(room_id, "o-1", "one")), lambda_context("ws_messages")),
    )
    first.start()
    deadline = time.monotonic() + 10
    while not ws.acks_posted(a) and time.monotonic() < deadline:  # the client waits for the ack
        time.sleep(0.005)
    assert ws.acks_posted(a), "message 1 was not acked"
    handler(message_event(alice, a, _frame(room_id, "o-2", "two")), lambda_context("ws_messages"))
    first.join(10)
    assert order == [1, 2]


@pytest.fixture
def turns(container: Container) -> RedisFanoutTurns:
    return RedisFanoutTurns(container.redis, ttl_ms=300)


def test_turns_queue_a_senders_messages_by_seq(turns: RedisFanoutTurns) -> None:
    room, user = uuid4(), uuid4()
    assert turns.take(room, user, 5) is True
    assert turns.take(room, user, 7) is False  # 5 is still fanning out
    assert turns.wait(room, user, 7, timeout_s=0.02) is False
    turns.release(room, user, 5)
    assert turns.wait(room, user, 7, timeout_s=0.5) is True
    # Other senders and other rooms are independent.
    assert turns.take(room, uuid4(), 6) is True
    assert turns.take(uuid4(), user, 8) is True


def test_a_ticket_left_by_a_crashed_holder_expires(turns: RedisFanoutTurns, container: Container) -> None:
    room, user = uuid4(), uuid4()
    assert turns.take(room, user, 1) is True  # never released
    assert turns.take(room, user, 2) is False
    assert turns.wait(room, user, 2, timeout_s=2.0) is True  # after the 300 ms ttl
    redis: RedisConnection = container.redis
    turns.release(room, user, 2)
    assert redis.client.exists(redis.key("rt", "fo", f"{{{room}}}", str(user))) == 0


def test_the_event_goes_to_the_bus_after_the_ack_and_the_fan_out(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    """PutEvents (the after-commit outbox flush) no longer delays the ack: it runs once the frames
    are out, and the event still reaches the bus."""
    from tests.support.lambdas import load_handler_module

    a, b = ws.connected(alice), ws.connected(bob)
    order = _record_order(ws)
    outbox = load_handler_module("ws_messages").container.outbox
    original = outbox.flush

    def flush(limit: int | None = None) -> Any:
        order.append(("flush", {}))
        return original(limit)

    outbox.flush = flush
    ws.recorder.calls.clear()
    ack = ws.send(a, _frame(room_id, "ev-1"))
    assert [cid for cid, _ in order] == [a, b, "flush"]
    deadline = time.monotonic() + 10
    while "message.created" not in ws.recorder.detail_types() and time.monotonic() < deadline:
        time.sleep(0.02)
    (created,) = ws.recorder.details("message.created")
    assert created["seq"] == ack["seq"]
