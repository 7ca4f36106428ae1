"""The end-to-end suite's client: the project's Python client (clients/python) plus helpers --
new connected users, event collection -- and local-only fault injection on the gateway's sockets."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from chatflow_client import ChatClient, ClientOptions, EventStream, MessageReceived
from tests.e2e.target import Target

PASSWORD = "correct-horse-battery-staple"
T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), 180)  # a hung scenario fails instead of hanging CI

    return asyncio.run(bounded())


@asynccontextmanager
async def chat_user(
    target: Target, prefix: str = "u", options: ClientOptions | None = None
) -> AsyncIterator[tuple[ChatClient, EventStream]]:
    """A newly registered user's client, connected, with an event stream opened before
    connecting (nothing is missed); closed on exit."""
    client = ChatClient(target.http_url, target.ws_url, options=options)
    try:
        await client.register(f"{prefix}{secrets.token_hex(4)}", PASSWORD)
        events = client.events()
        await client.connect()
        yield client, events
    finally:
        await client.close()


@asynccontextmanager
async def alice_and_bob(
    target: Target,
) -> AsyncIterator[tuple[ChatClient, EventStream, ChatClient, EventStream]]:
    """Two new users' connected clients and their event streams."""
    async with chat_user(target, "alice") as (alice, a_events), chat_user(target, "bob") as (bob, b_events):
        yield alice, a_events, bob, b_events


async def second_device(
    target: Target, of: ChatClient, options: ClientOptions | None = None
) -> tuple[ChatClient, EventStream]:
    """Another connected client of the same user (signed in again: its own refresh family)."""
    assert of.user is not None
    client = ChatClient(target.http_url, target.ws_url, options=options)
    await client.login(of.user.handle, PASSWORD)
    events = client.events()
    await client.connect()
    return client, events


async def shared_room(owner: ChatClient, *members: ChatClient) -> str:
    """A new public room of ``owner`` that ``members`` joined (membership, over HTTP)."""
    room = await owner.api.create_room(f"e2e-{secrets.token_hex(3)}")
    for member in members:
        await member.api.join_room(room.id)
    return room.id


async def received(
    events: EventStream, room_id: str, count: int, *, timeout: float = 60.0
) -> list[MessageReceived]:
    """The next ``count`` MessageReceived events of a room (others are skipped)."""
    out: list[MessageReceived] = []

    async def collect() -> None:
        async for event in events:
            if isinstance(event, MessageReceived) and event.message.room_id == room_id:
                out.append(event)
                if len(out) == count:
                    return

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise AssertionError(f"got {len(out)} of {count} messages: {[e.message.seq for e in out]}") from None
    return out


# --- local gateway only ---------------------------------------------------------------------------


def _live_connections(target: Target, user_id: str) -> list[Any]:
    assert target.gateway is not None, "needs the local gateway"
    ws_api = target.gateway.gateway.ws
    assert ws_api is not None
    return [
        live
        for live in list(ws_api.live.values())
        if (live.facts.authorizer or {}).get("principalId") == user_id
    ]


async def abort_server_side(target: Target, user_id: str) -> int:
    """Drop every live socket of a user at the gateway, without a close frame (a network cut);
    returns how many. Runs on the gateway's loop (its sockets belong to it)."""
    assert target.gateway is not None
    for _ in range(200):  # the user may be between two connections: wait (bounded) for one
        lives = _live_connections(target, user_id)
        if lives:
            break
        await asyncio.sleep(0.05)

    async def abort() -> None:
        for live in lives:
            live.connection.transport.abort()

    await asyncio.to_thread(target.gateway.run, abort())
    return len(lives)
