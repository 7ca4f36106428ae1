"""End to end with real WebSocket clients (the project's Python client) against a running gateway
(local, LocalStack or AWS: see conftest.py). Each test registers its own users, so the suite can
run against a shared stage. The client's own guarantees are in test_client_python.py; these are
the server's: membership, resume by sequence, bans, the connection limit, 410 clean-up."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from chatflow.adapters.redis_realtime import RedisRealtimeStore
from chatflow_client import (
    ActionRefused,
    ApiError,
    ChatClient,
    Closed,
    HandshakeRefused,
    MessageReceived,
    SessionExpired,
)
from tests.e2e.client import PASSWORD, alice_and_bob, chat_user, received, run, shared_room
from tests.e2e.target import Target

pytestmark = pytest.mark.e2e


def test_two_members_chat_while_a_non_member_receives_nothing(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with (
            alice_and_bob(e2e_target) as (alice, a_events, bob, b_events),
            chat_user(e2e_target, "carol") as (carol, c_events),
        ):
            room = await shared_room(alice, bob)
            ack = await alice.send(room, "hi bob")
            [got] = await received(b_events, room, 1)
            assert alice.user is not None
            assert (got.message.body, got.message.seq, got.message.sender_handle) == (
                "hi bob",
                ack.seq,
                alice.user.handle,
            )
            reply = await bob.send(room, "hi alice")
            assert reply.seq == ack.seq + 1  # per-room sequence, no gaps
            back = [e for e in await received(a_events, room, 2) if not e.own]
            assert [e.message.body for e in back] == ["hi alice"]

            # Carol is not a member: she can neither read nor send, and received nothing.
            with pytest.raises(ActionRefused) as refused:
                await carol.send(room, "let me in")
            assert refused.value.code in ("not_a_member", "room_not_found")
            with pytest.raises(ApiError) as unreadable:
                await carol.history(room)
            assert unreadable.value.status in (403, 404)
            await carol.ping()  # frames sent to her before this are in her stream after it
            assert not [e for e in c_events.drain() if isinstance(e, MessageReceived)]

    run(scenario)


def test_a_client_offering_the_chatflow_subprotocol_gets_it_and_never_its_token(e2e_target: Target) -> None:
    """Browsers cannot set headers on a WebSocket but can offer subprotocols (docs/auth.md): the
    handshake must pick ``chatflow.v1`` (a browser drops one that picks none) and never echo the
    ``bearer.<token>`` entry. A raw socket: this is about the handshake itself."""

    async def scenario() -> None:
        async with chat_user(e2e_target, "alice") as (alice, _):
            token = await alice.api.access_token()
            url = f"{e2e_target.ws_url}{'&' if '?' in e2e_target.ws_url else '?'}token={token}"
            offered = [Subprotocol("chatflow.v1"), Subprotocol(f"bearer.{token}")]
            async with connect(url, open_timeout=30, subprotocols=offered) as ws:
                assert ws.subprotocol == "chatflow.v1"
                await ws.send(json.dumps({"action": "ping", "requestId": "sp-1"}))
                pong = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert (pong["type"], pong["requestId"]) == ("pong", "sp-1")
            async with connect(url, open_timeout=30) as plain:
                assert plain.subprotocol is None  # nothing offered, nothing chosen

    run(scenario)


def test_reconnect_and_resume_by_sequence(e2e_target: Target) -> None:
    """Bob's last seen seq survives his client (an app restart): a new client joined from it gets
    exactly what he missed, through resume, then live delivery again."""

    async def scenario() -> None:
        async with chat_user(e2e_target, "alice") as (alice, _):
            bob = ChatClient(e2e_target.http_url, e2e_target.ws_url)
            handle = f"bob{secrets.token_hex(4)}"
            await bob.register(handle, PASSWORD)
            room = await shared_room(alice, bob)
            b_events = bob.events()
            await bob.connect()
            await bob.join(room)
            first = await alice.send(room, "before the tunnel")
            [seen] = await received(b_events, room, 1)
            last_seen = seen.message.seq
            assert last_seen == first.seq
            await bob.close()  # Bob drives into a tunnel

            missed = [await alice.send(room, f"missed {i}") for i in range(3)]

            back = ChatClient(e2e_target.http_url, e2e_target.ws_url)
            try:
                await back.login(handle, PASSWORD)
                events = back.events()
                await back.connect()
                await back.join(room, since_seq=last_seen)
                caught_up = await received(events, room, 3)
                assert [e.message.seq for e in caught_up] == [a.seq for a in missed]
                assert [e.message.body for e in caught_up] == ["missed 0", "missed 1", "missed 2"]
                assert {e.source for e in caught_up} == {"resume"}

                live = await alice.send(room, "welcome back")
                [got] = await received(events, room, 1)
                assert (got.message.seq, got.message.body, got.source) == (live.seq, "welcome back", "live")
            finally:
                await back.close()

    run(scenario)


def test_a_ban_kicks_live_sockets_and_refuses_new_ones(e2e_target: Target) -> None:
    async def scenario() -> None:
        admin = await e2e_target.admin(PASSWORD)
        if admin is None:
            pytest.fail("remote target without CHATFLOW_ADMIN_TOKEN: cannot ban (set it to run this test)")
        try:
            async with chat_user(e2e_target, "mallory") as (phone, phone_events):
                assert phone.user is not None
                laptop = ChatClient(e2e_target.http_url, e2e_target.ws_url)
                await laptop.login(phone.user.handle, PASSWORD)
                laptop_events = laptop.events()
                await laptop.connect()
                tokens = phone.api.tokens
                assert tokens is not None

                await admin.request("POST", f"/admin/users/{phone.user.id}/ban")

                # Both sockets are closed; reconnecting is refused and so is the refresh: each
                # client stops with SessionExpired instead of retrying forever.
                for events in (phone_events, laptop_events):
                    closed = await events.next(Closed, timeout=60)
                    assert isinstance(closed.error, SessionExpired)
                await laptop.close()

                # The old token neither opens a socket nor calls the API (the authorizer's cached
                # answer does not help: $connect re-checks the account).
                again = ChatClient(e2e_target.http_url, e2e_target.ws_url)
                again.api.use_session(tokens.access_token, user=phone.user)
                try:
                    with pytest.raises((SessionExpired, HandshakeRefused)):
                        await again.connect()
                    with pytest.raises((SessionExpired, ApiError)):
                        await again.api.me()
                finally:
                    await again.close()
        finally:
            await admin.close()

    run(scenario)


def test_the_per_user_connection_limit(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with chat_user(e2e_target, "dave") as (first, _):
            assert first.user is not None
            devices = [first]
            try:
                for _ in range(e2e_target.max_connections - 1):
                    device = ChatClient(e2e_target.http_url, e2e_target.ws_url)
                    devices.append(device)
                    await device.login(first.user.handle, PASSWORD)
                    await device.connect()
                extra = ChatClient(e2e_target.http_url, e2e_target.ws_url)
                devices.append(extra)
                await extra.login(first.user.handle, PASSWORD)
                with pytest.raises(HandshakeRefused) as refused:
                    await extra.connect()
                assert refused.value.status == 429

                # Closing one frees a slot once its $disconnect ran (asynchronous, as in AWS).
                await devices[1].close()
                statuses = []
                for _ in range(50):
                    try:
                        await extra.connect()
                        break
                    except HandshakeRefused as exc:
                        statuses.append(exc.status)
                        await asyncio.sleep(0.2)
                assert set(statuses) <= {429}
                assert await extra.ping(), "the freed slot never became available"
            finally:
                for device in devices[1:]:
                    await device.close()

    run(scenario)


def _connection_of(target: Target, user_id: str) -> str:
    """Local only: the live connection id of a user (API Gateway never tells the client)."""
    assert target.gateway is not None
    ws_api = target.gateway.gateway.ws
    assert ws_api is not None
    found = [
        cid
        for cid, live in ws_api.live.items()
        if (live.facts.authorizer or {}).get("principalId") == user_id
    ]
    assert len(found) == 1, found
    return found[0]


def test_a_vanished_client_answers_410_and_is_cleaned_up(e2e_target: Target) -> None:
    """Bob's network dies and (API Gateway's $disconnect being best effort) nobody is told: the next
    fan-out gets 410 GoneException for his connection and must drop it, while Alice's send works;
    his client comes back and catches up by itself."""
    local = e2e_target.gateway is not None

    async def scenario() -> None:
        async with alice_and_bob(e2e_target) as (alice, _, bob, b_events):
            room = await shared_room(alice, bob)
            await bob.join(room)
            assert bob.user is not None
            bob_connection = _connection_of(e2e_target, bob.user.id) if local else None
            if local:
                assert e2e_target.gateway is not None
                ws_api = e2e_target.gateway.gateway.ws
                assert ws_api is not None
                assert bob_connection is not None
                ws_api.lost_disconnects.add(bob_connection)
                store = _realtime_store()
                assert _registered(store, bob.user.id, bob_connection)
            bob.drop_connection()  # the network dies under his client (which reconnects by itself)
            ack = await alice.send(room, "anyone there?")
            assert ack.seq >= 1
            if local:
                assert bob_connection is not None
                # The ack is posted BEFORE the room's fan-out (docs/protocol.md): the 410 and its
                # clean-up come right after it, in the same invocation.
                for _ in range(100):
                    if not _registered(store, bob.user.id, bob_connection):
                        break
                    await asyncio.sleep(0.05)
                assert not _registered(store, bob.user.id, bob_connection)
                await _assert_gone(e2e_target, bob_connection)
            # Bob's client comes back and catches up: nothing was lost.
            [got] = await received(b_events, room, 1)
            assert (got.message.body, got.message.seq) == ("anyone there?", ack.seq)

    run(scenario)


def _realtime_store() -> RedisRealtimeStore:
    """The connection registry as the functions see it (same Redis and key prefix); a container
    of this process holding only its Redis client."""
    from chatflow.container import Container
    from chatflow.settings import get_settings

    return Container(get_settings()).connection_registry


def _registered(store: RedisRealtimeStore, user_id: str, connection_id: str) -> bool:
    live = store.connections_of([uuid.UUID(user_id)])
    return connection_id in {t.connection_id for t in live}


async def _assert_gone(target: Target, connection_id: str) -> None:
    import boto3

    assert target.gateway is not None
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=target.gateway.management_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",  # the local key pair the gateway verifies
        aws_secret_access_key="testing",
    )
    with pytest.raises(client.exceptions.GoneException):
        await asyncio.to_thread(client.get_connection, ConnectionId=connection_id)
