"""End to end with real WebSocket clients against a running gateway (local, LocalStack or AWS:
see conftest.py). Each test registers its own users, so the suite can run against a shared stage."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import pytest
from websockets.exceptions import InvalidStatus

from chatflow.adapters.redis_realtime import RedisRealtimeStore
from tests.e2e.client import Api, HttpError, Socket
from tests.e2e.target import Target

pytestmark = pytest.mark.e2e
T = TypeVar("T")


def run(target: Target, scenario: Callable[[Api], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            return await scenario(Api(target.http_url, session))

    return asyncio.run(wrapper())


def test_two_members_chat_while_a_non_member_receives_nothing(e2e_target: Target) -> None:
    async def scenario(api: Api) -> None:
        alice, bob, carol = (
            await api.new_user("alice"),
            await api.new_user("bob"),
            await api.new_user("carol"),
        )
        room = await api.public_room(alice, bob)
        a = await Socket.open(e2e_target.ws_url, alice.access_token)
        b = await Socket.open(e2e_target.ws_url, bob.access_token)
        c = await Socket.open(e2e_target.ws_url, carol.access_token)
        try:
            ack = await a.send_message(room, "hi bob")
            got = await b.wait_for(lambda f: f.get("type") == "message" and f["message"]["roomId"] == room)
            assert got["message"]["body"] == "hi bob"
            assert got["message"]["seq"] == ack["seq"]
            assert got["message"]["senderHandle"] == alice.handle

            reply = await b.send_message(room, "hi alice")
            back = await a.wait_for(
                lambda f: f.get("type") == "message" and f["message"]["seq"] == reply["seq"]
            )
            assert back["message"]["body"] == "hi alice"
            assert reply["seq"] == ack["seq"] + 1  # per-room sequence, no gaps

            # Carol is not a member: she can neither read nor send, and received nothing.
            refused = await c.request(
                {"action": "sendMessage", "roomId": room, "clientMessageId": "c-x", "body": "let me in"}
            )
            assert refused["type"] == "error"
            assert refused["code"] in ("not_a_member", "room_not_found")
            await c.sync()
            assert c.messages() == []
            assert a.messages(room) == [back["message"]]  # the sender gets an ack, not an echo
        finally:
            for sock in (a, b, c):
                await sock.close()

    run(e2e_target, scenario)


def test_a_client_offering_the_chatflow_subprotocol_gets_it_and_never_its_token(e2e_target: Target) -> None:
    """Browsers cannot set headers on a WebSocket but can offer subprotocols (docs/auth.md): the
    handshake must pick ``chatflow.v1`` (a browser drops one that picks none) and never echo the
    ``bearer.<token>`` entry."""

    async def scenario(api: Api) -> None:
        alice = await api.new_user("alice")
        offered = ["chatflow.v1", f"bearer.{alice.access_token}"]
        sock = await Socket.open(e2e_target.ws_url, alice.access_token, subprotocols=offered)
        try:
            assert sock.ws.subprotocol == "chatflow.v1"
            await sock.send({"action": "ping", "requestId": "sp-1"})
            pong = await sock.wait_for(lambda f: f.get("requestId") == "sp-1")
            assert pong["type"] == "pong"
        finally:
            await sock.close()
        plain = await Socket.open(e2e_target.ws_url, alice.access_token)
        try:
            assert plain.ws.subprotocol is None  # nothing offered, nothing chosen
        finally:
            await plain.close()

    run(e2e_target, scenario)


def test_reconnect_and_resume_by_sequence(e2e_target: Target) -> None:
    async def scenario(api: Api) -> None:
        alice, bob = await api.new_user("alice"), await api.new_user("bob")
        room = await api.public_room(alice, bob)
        a = await Socket.open(e2e_target.ws_url, alice.access_token)
        b = await Socket.open(e2e_target.ws_url, bob.access_token)
        try:
            first = await a.send_message(room, "before the tunnel")
            seen = await b.wait_for(lambda f: f.get("type") == "message")
            last_seen = seen["message"]["seq"]
            assert last_seen == first["seq"]
            await b.close()  # Bob drives into a tunnel

            missed = [await a.send_message(room, f"missed {i}") for i in range(3)]

            b = await Socket.open(e2e_target.ws_url, await api.login(bob.handle))
            page = await b.request({"action": "resume", "roomId": room, "sinceSeq": last_seen})
            assert page["type"] == "resumed"
            assert [m["seq"] for m in page["messages"]] == [m["seq"] for m in missed]
            assert [m["body"] for m in page["messages"]] == ["missed 0", "missed 1", "missed 2"]
            assert page["more"] is False

            # Live delivery works again on the new connection.
            live = await a.send_message(room, "welcome back")
            got = await b.wait_for(
                lambda f: f.get("type") == "message" and f["message"]["seq"] == live["seq"]
            )
            assert got["message"]["body"] == "welcome back"
        finally:
            await a.close()
            await b.close()

    run(e2e_target, scenario)


def test_a_ban_kicks_live_sockets_and_refuses_new_ones(e2e_target: Target) -> None:
    async def scenario(api: Api) -> None:
        admin_token = await e2e_target.admin(api)
        if admin_token is None:
            pytest.fail("remote target without CHATFLOW_ADMIN_TOKEN: cannot ban (set it to run this test)")
        mallory = await api.new_user("mallory")
        phone = await Socket.open(e2e_target.ws_url, mallory.access_token)
        laptop = await Socket.open(e2e_target.ws_url, mallory.access_token)
        await phone.sync()
        await laptop.sync()

        await api.call("POST", f"/admin/users/{mallory.user_id}/ban", admin_token)

        await phone.wait_closed()
        await laptop.wait_closed()
        # The old token no longer opens a socket nor calls the API (the authorizer's cached
        # answer does not help: $connect re-checks the account).
        with pytest.raises(InvalidStatus) as refused:
            await Socket.open(e2e_target.ws_url, mallory.access_token)
        assert refused.value.response.status_code in (401, 403)
        with pytest.raises(HttpError) as http_refused:
            await api.call("GET", "/users/me", mallory.access_token)
        assert http_refused.value.status in (401, 403)

    run(e2e_target, scenario)


def test_the_per_user_connection_limit(e2e_target: Target) -> None:
    async def scenario(api: Api) -> None:
        dave = await api.new_user("dave")
        sockets = [
            await Socket.open(e2e_target.ws_url, dave.access_token) for _ in range(e2e_target.max_connections)
        ]
        try:
            with pytest.raises(InvalidStatus) as refused:
                await Socket.open(e2e_target.ws_url, dave.access_token)
            assert refused.value.response.status_code == 429

            # Closing one frees a slot once its $disconnect ran (asynchronous, as in AWS).
            await sockets.pop().close()
            reopened = None
            statuses = []
            for _ in range(50):
                try:
                    reopened = await Socket.open(e2e_target.ws_url, dave.access_token)
                    break
                except InvalidStatus as exc:
                    statuses.append(exc.response.status_code)
                    await asyncio.sleep(0.2)
            assert set(statuses) <= {429}
            assert reopened is not None, "the freed slot never became available"
            sockets.append(reopened)
            await reopened.sync()
        finally:
            for sock in sockets:
                await sock.close()

    run(e2e_target, scenario)


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
    fan-out gets 410 GoneException for his connection and must drop it, while Alice's send works."""
    local = e2e_target.gateway is not None

    async def scenario(api: Api) -> None:
        alice, bob = await api.new_user("alice"), await api.new_user("bob")
        room = await api.public_room(alice, bob)
        a = await Socket.open(e2e_target.ws_url, alice.access_token)
        b = await Socket.open(e2e_target.ws_url, bob.access_token)
        await b.sync()
        bob_connection = _connection_of(e2e_target, bob.user_id) if local else None
        if local:
            assert e2e_target.gateway is not None
            ws_api = e2e_target.gateway.gateway.ws
            assert ws_api is not None
            assert bob_connection is not None
            ws_api.lost_disconnects.add(bob_connection)
            store = _realtime_store()
            assert _registered(store, bob.user_id, bob_connection)
        b.vanish()
        try:
            ack = await a.send_message(room, "anyone there?")
            assert ack["seq"] >= 1
            if local:
                assert bob_connection is not None
                assert not _registered(store, bob.user_id, bob_connection)
                await _assert_gone(e2e_target, bob_connection)
            # Bob comes back and catches up: nothing was lost.
            b = await Socket.open(e2e_target.ws_url, await api.login(bob.handle))
            page = await b.request({"action": "resume", "roomId": room, "sinceSeq": ack["seq"] - 1})
            assert [m["body"] for m in page["messages"]] == ["anyone there?"]
        finally:
            await a.close()
            with contextlib.suppress(Exception):
                await b.close()

    run(e2e_target, scenario)


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
