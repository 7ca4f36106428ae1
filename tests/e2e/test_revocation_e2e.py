"""A connection receives only while its session is valid -- every revocation path on the real
stack (the local gateway by default: functions in worker processes, @connections, SigV4), with a
raw WebSocket as the revoked device: within 5 s of the revocation it is closed or, at the very
least, hears nothing new (docs/auth.md, "Revocation")."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chatflow_client import ChatClient, HttpApi
from tests.e2e.client import PASSWORD, chat_user, run
from tests.e2e.target import Target

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WITHIN_S = 5.0


@dataclass
class Victim:
    api: HttpApi
    user_id: str
    handle: str
    socket: ClientConnection


@asynccontextmanager
async def victim_in_room(target: Target, room_id: str) -> AsyncIterator[Victim]:
    """A new user, member of ``room_id``, with one raw WebSocket open (the device to revoke)."""
    api = HttpApi(target.http_url)
    handle = f"victim{secrets.token_hex(4)}"
    user = await api.register(handle, PASSWORD)
    await api.join_room(room_id)
    token = await api.access_token()
    try:
        async with connect(f"{target.ws_url}?token={token}", open_timeout=30) as socket:
            yield Victim(api, user.id, handle, socket)
    finally:
        await api.close()


async def next_message(socket: ClientConnection, body: str, timeout: float) -> dict[str, Any] | None:
    """The ``message`` frame carrying ``body`` if it arrives within ``timeout`` (None otherwise,
    or when the socket closes first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        try:
            frame = json.loads(await asyncio.wait_for(socket.recv(), left))
        except (TimeoutError, ConnectionClosed):
            return None
        if frame.get("type") == "message" and frame["message"]["body"] == body:
            return dict(frame)
    return None


async def closed_within(socket: ClientConnection, timeout: float) -> bool:
    try:
        await asyncio.wait_for(socket.wait_closed(), timeout)
    except TimeoutError:
        return False
    return True


async def revocation_scenario(
    target: Target,
    revoke: Callable[[Victim], Awaitable[None]],
    *,
    expect_closed: bool = True,
    then: Callable[[Victim], Awaitable[None]] | None = None,
) -> None:
    """The victim hears the room before the revocation, and nothing after it (closed within 5 s
    when ``expect_closed``); ``then`` runs while the victim's socket is still in scope."""
    async with chat_user(target, "friend") as (friend, _):
        room = await friend.api.create_room(f"rv-{secrets.token_hex(3)}")
        async with victim_in_room(target, room.id) as victim:
            await friend.send(room.id, "before")
            assert await next_message(victim.socket, "before", 30) is not None  # live until now

            await revoke(victim)
            await friend.send(room.id, "after")
            assert await next_message(victim.socket, "after", WITHIN_S) is None
            if expect_closed:
                assert await closed_within(victim.socket, WITHIN_S)
            if then is not None:
                await then(victim)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/admin/users/{}/ban"), ("DELETE", "/admin/users/{}")],
    ids=["ban", "http_admin_delete"],
)
def test_an_admin_action_closes_the_socket(e2e_target: Target, method: str, path: str) -> None:
    async def scenario() -> None:
        admin = await e2e_target.admin(PASSWORD)
        if admin is None:
            pytest.fail(f"remote target without CHATFLOW_ADMIN_TOKEN: cannot {method} {path} (set it)")
        try:

            async def act(victim: Victim) -> None:
                await admin.request(method, path.format(victim.user_id))

            await revocation_scenario(e2e_target, act)
        finally:
            await admin.close()

    run(scenario)


def test_logout_everywhere_closes_the_socket(e2e_target: Target) -> None:
    async def scenario() -> None:
        async def logout_everywhere(victim: Victim) -> None:
            # Tokens carry whole-second iat: let the clock pass it, so "now" is after the token.
            await asyncio.sleep(1.05)
            await victim.api.logout(everywhere=True)

        await revocation_scenario(e2e_target, logout_everywhere)

    run(scenario)


def test_a_password_change_closes_the_socket(e2e_target: Target) -> None:
    async def scenario() -> None:
        async def change_password(victim: Victim) -> None:
            await asyncio.sleep(1.05)  # past the token's whole-second iat, as for logout everywhere
            await victim.api.change_password(PASSWORD, "a brand new secret")

        await revocation_scenario(e2e_target, change_password)

    run(scenario)


def test_admin_cli_delete_closes_the_socket(e2e_target: Target, chatflow_env: dict[str, str]) -> None:
    if e2e_target.gateway is None:
        pytest.skip("the admin CLI needs the stage's database and cache (make admin on AWS)")
    gateway = e2e_target.gateway

    async def scenario() -> None:
        async def delete(victim: Victim) -> None:
            await asyncio.sleep(1.05)
            env = {**os.environ, **chatflow_env, "WS_MANAGEMENT_ENDPOINT": gateway.management_endpoint}
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "chatflow.admin_cli", "delete", victim.handle],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr[-2000:]

        await revocation_scenario(e2e_target, delete)

    run(scenario)


def test_a_ban_whose_delete_connection_fails_leaves_a_silent_socket_closed_by_its_next_frame(
    e2e_target: Target,
) -> None:
    if e2e_target.gateway is None or e2e_target.gateway.gateway.management is None:
        pytest.skip("fault injection needs the local gateway")
    management = e2e_target.gateway.gateway.management

    async def scenario() -> None:
        admin = await e2e_target.admin(PASSWORD)
        assert admin is not None
        try:

            async def ban_while_deletes_fail(victim: Victim) -> None:
                management.fail_deletes = True
                try:
                    await admin.request("POST", f"/admin/users/{victim.user_id}/ban")
                finally:
                    management.fail_deletes = False

            async def ping_is_refused_and_closes(victim: Victim) -> None:
                assert not await closed_within(victim.socket, 0.1)  # DeleteConnection failed: open
                # Its keep-alive is refused and ends it.
                await victim.socket.send(json.dumps({"action": "ping", "requestId": "p"}))
                frames: list[dict[str, Any]] = []
                try:
                    async with asyncio.timeout(WITHIN_S):
                        async for raw in victim.socket:
                            frames.append(json.loads(raw))
                except TimeoutError:
                    pytest.fail(f"the revoked socket stayed open after its ping: {frames}")
                assert [f.get("code") for f in frames if f.get("type") == "error"][:1] == ["account_disabled"]
                assert await closed_within(victim.socket, WITHIN_S)

            await revocation_scenario(
                e2e_target, ban_while_deletes_fail, expect_closed=False, then=ping_is_refused_and_closes
            )
        finally:
            await admin.close()

    run(scenario)


def test_a_client_sdk_session_ends_on_logout_everywhere(e2e_target: Target) -> None:
    """The shipped client stops (SessionExpired) instead of reconnecting forever."""
    from chatflow_client import Closed, SessionExpired

    async def scenario() -> None:
        async with chat_user(e2e_target, "sdk") as (client, events):
            assert isinstance(client, ChatClient)
            await asyncio.sleep(1.05)
            other = HttpApi(e2e_target.http_url)
            try:
                assert client.user is not None
                await other.login(client.user.handle, PASSWORD)
                await other.logout(everywhere=True)
            finally:
                await other.close()
            closed = await events.next(Closed, timeout=30)
            assert isinstance(closed.error, SessionExpired)

    run(scenario)


def test_a_forgotten_connection_is_live_again_on_its_next_frame_and_the_client_catches_up(
    e2e_target: Target,
) -> None:
    """The registry forgets Bob's connection (here: his registry entry is removed, as an expiry
    or a Redis data loss would); live frames stop reaching him. His client's next frame (its
    keep-alive ping) re-registers the connection, the server answers ``resync``, and the shipped
    client re-joins and resumes: the missed message arrives, then live delivery again."""
    if e2e_target.gateway is None:
        pytest.skip("needs the local registry")
    from chatflow.container import Container
    from chatflow.settings import get_settings
    from chatflow_client import ClientOptions
    from tests.e2e.client import received

    registry = Container(get_settings()).connection_registry

    async def scenario() -> None:
        async with (
            chat_user(e2e_target, "alice") as (alice, _),
            chat_user(e2e_target, "bob", ClientOptions(keepalive_s=1.0)) as (bob, b_events),
        ):
            room = await alice.api.create_room(f"rs-{secrets.token_hex(3)}")
            await bob.api.join_room(room.id)
            await bob.join(room.id)
            assert bob.user is not None
            bob_id = uuid.UUID(bob.user.id)
            for target in registry.connections_of([bob_id]):
                registry.unregister(bob_id, target.connection_id)
            missed = await alice.send(room.id, "while forgotten")
            [got] = await received(b_events, room.id, 1, timeout=15)
            assert (got.message.seq, got.source) == (missed.seq, "resume")
            assert registry.connections_of([bob_id])  # registered again by his ping
            live = await alice.send(room.id, "live again")
            [again] = await received(b_events, room.id, 1, timeout=15)
            assert (again.message.seq, again.source) == (live.seq, "live")

    run(scenario)
