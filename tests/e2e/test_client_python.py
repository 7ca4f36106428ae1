"""The Python client (clients/python) end to end against the e2e target (tests/e2e/conftest.py):
what a client developer relies on -- send order, exactly-once in-order delivery across killed
connections, idempotent resend, token refresh, refused actions as exceptions, presence, typing,
read positions, history paging.

Tests that cut sockets at the gateway (rather than from the client) need the local gateway and
skip elsewhere; cutting from the client side (``drop_connection``) works against any target.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from chatflow_client import (
    ActionRefused,
    ApiError,
    ChatClient,
    ClientOptions,
    Closed,
    Connected,
    Disconnected,
    HttpApi,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    PresenceChanged,
    ReadPositionChanged,
    SessionExpired,
    TypingChanged,
)
from tests.e2e.client import (
    PASSWORD,
    abort_server_side,
    alice_and_bob,
    chat_user,
    received,
    run,
    second_device,
    shared_room,
)
from tests.e2e.target import Target

pytestmark = pytest.mark.e2e


def test_a_conversation_send_edit_delete_typing_read(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with alice_and_bob(e2e_target) as (alice, a_events, bob, b_events):
            room = await shared_room(alice, bob)
            await alice.join(room)
            await bob.join(room)

            ack = await alice.send(room, "hello bob")
            assert ack.seq == 1
            assert not ack.duplicate
            [got] = await received(b_events, room, 1)
            assert (got.message.body, got.message.seq, got.own, got.source) == ("hello bob", 1, False, "live")
            assert bob.user is not None
            assert alice.user is not None
            assert got.message.sender_handle == alice.user.handle
            # The sender's own stream has its message too, at its place, once.
            [own] = await received(a_events, room, 1)
            assert (own.message.seq, own.own, own.source) == (1, True, "ack")

            edited = await alice.edit(room, 1, "hello bob!")
            assert edited.body == "hello bob!"
            assert edited.edited_at is not None
            seen = await b_events.next(MessageEdited, timeout=30)
            assert seen.message.body == "hello bob!"

            assert await bob.typing(room)
            typing = await a_events.next(TypingChanged, timeout=30)
            assert (typing.user_id, typing.is_typing) == (bob.user.id, True)
            assert alice.room(room).typing == {bob.user.id: bob.user.handle}
            await bob.send(room, "typed it")
            stopped = await a_events.next(TypingChanged, timeout=30)  # his message ends his typing
            assert stopped.is_typing is False
            assert alice.room(room).typing == {}

            deleted = await alice.delete(room, 1)
            assert deleted.deleted
            gone = await b_events.next(MessageDeleted, timeout=30)
            assert gone.message.seq == 1
            assert gone.message.body is None

            # Read positions: sending moved bob's; alice's new message is unread until he marks
            # it, and his other device hears about the mark.
            assert bob.room(room).unread == 0
            tablet, t_events = await second_device(e2e_target, bob)
            try:
                await tablet.join(room)
                await alice.send(room, "did you read this?")
                [hers] = await received(b_events, room, 1)
                assert hers.message.seq == 3
                assert bob.room(room).unread == 1
                assert await bob.mark_read(room) == 3
                assert bob.room(room).unread == 0
                moved = await t_events.next(ReadPositionChanged, timeout=30)
                assert (moved.room_id, moved.seq) == (room, 3)
                assert tablet.room(room).read_seq == 3
            finally:
                await tablet.close()

    run(scenario)


def test_rapid_sends_are_stored_and_delivered_in_the_order_typed(e2e_target: Target) -> None:
    """Frames of one connection are processed concurrently by the server: only the client's
    one-in-flight-per-room queue makes 15 back-to-back sends keep their order."""

    async def scenario() -> None:
        async with alice_and_bob(e2e_target) as (alice, _, bob, b_events):
            room = await shared_room(alice, bob)
            await bob.join(room)
            bodies = [f"quick {i}" for i in range(15)]
            sends = [alice.enqueue(room, body) for body in bodies]  # no waiting in between
            acks = [await s for s in sends]
            assert [a.seq for a in acks] == list(range(1, 16))
            got = await received(b_events, room, 15)
            assert [e.message.body for e in got] == bodies
            page = await bob.history(room)
            assert [m.body for m in page.messages] == bodies

    run(scenario)


def test_killed_connections_mid_conversation_lose_nothing_and_duplicate_nothing(e2e_target: Target) -> None:
    """Both users' sockets are cut repeatedly while alice sends 30 messages without waiting: after
    reconnect + resume + resend, bob has every message exactly once, in the order alice typed,
    and the room holds each exactly once."""
    if e2e_target.gateway is None:
        pytest.skip("cuts sockets at the local gateway")

    async def scenario() -> None:
        async with alice_and_bob(e2e_target) as (alice, a_events, bob, b_events):
            room = await shared_room(alice, bob)
            await bob.join(room)
            await alice.join(room)
            assert alice.user is not None
            assert bob.user is not None
            reconnects: list[Connected] = []
            bob.on(Connected, reconnects.append)
            alice.on(Connected, reconnects.append)
            bodies = [f"m{i:02d}" for i in range(30)]
            sends = [alice.enqueue(room, body) for body in bodies]
            cuts = 0
            for victim in (bob.user.id, alice.user.id, bob.user.id, alice.user.id):
                while sum(s.ack.done() for s in sends) < 6 * (cuts + 1):  # spread over the run
                    await asyncio.sleep(0.02)
                cuts += await abort_server_side(e2e_target, victim)
            acks = [await s for s in sends]
            assert cuts >= 4
            assert [a.seq for a in acks] == list(range(1, 31))
            got = await received(b_events, room, 30)
            assert [e.message.body for e in got] == bodies
            assert [e.message.seq for e in got] == list(range(1, 31))
            mine = await received(a_events, room, 30)
            assert [e.message.seq for e in mine] == list(range(1, 31))
            stored = await bob.history(room, limit=100)
            assert [m.body for m in stored.messages] == bodies
            # Nothing more arrives: no duplicates (a ping round trip flushes what is in flight).
            await bob.ping()
            assert bob.room(room).last_seq == 30
            assert bob.room(room).waiting == 0
            # Each cut cost a reconnect (one more when the server answered connection_not_found
            # for a socket it had dropped: a fan-out raced the handshake, see docs/clients.md).
            assert len(reconnects) >= cuts
            assert all(e.reconnected for e in reconnects)

    run(scenario)


def test_a_lost_ack_is_resent_with_the_same_client_message_id(e2e_target: Target) -> None:
    """The socket dies right after a sendMessage frame left (the server stores the message, the
    ack is lost): the client resumes, resends the SAME clientMessageId and gets the original ack
    (duplicate); the room holds the message once and the stream delivers it once."""
    gateway = e2e_target.gateway
    if gateway is None:
        pytest.skip("cuts the socket at the local gateway")
    ws_api = gateway.gateway.ws
    assert ws_api is not None

    async def scenario() -> None:
        async with chat_user(e2e_target, "alice") as (alice, a_events):
            room = (await alice.api.create_room(f"sdk-{secrets.token_hex(3)}")).id
            await alice.join(room)
            cmid = f"lost-ack-{secrets.token_hex(4)}"
            cut = asyncio.get_running_loop().create_future()

            def cut_after_send(route: str, event: dict[str, object]) -> None:
                body = str(event.get("body") or "")
                if route == "sendMessage" and cmid in body and not cut.done():
                    # The gateway's loop: abort that connection; the handler still runs and stores.
                    cid = event["requestContext"]["connectionId"]  # type: ignore[index]
                    ws_api.live[cid].connection.transport.abort()
                    cut.get_loop().call_soon_threadsafe(cut.set_result, None)

            ws_api.on_event = cut_after_send
            try:
                outgoing = alice.enqueue(room, "said once", client_message_id=cmid)
                ack = await outgoing
            finally:
                ws_api.on_event = None
            assert cut.done()
            assert outgoing.attempts >= 2
            assert ack.duplicate is True
            assert ack.seq == 1
            stored = await alice.history(room)
            assert [(m.client_message_id, m.body) for m in stored.messages] == [(cmid, "said once")]
            [mine] = await received(a_events, room, 1)
            assert (mine.message.seq, mine.message.client_message_id) == (1, cmid)
            await alice.send(room, "next")
            [after] = await received(a_events, room, 1)
            assert after.message.seq == 2  # the first one was not delivered twice

    run(scenario)


def test_client_side_network_loss_reconnects_and_resumes(e2e_target: Target) -> None:
    """Works against any target: bob's client drops its own socket; what alice sends meanwhile
    arrives through resume, once."""

    async def scenario() -> None:
        async with alice_and_bob(e2e_target) as (alice, _, bob, b_events):
            room = await shared_room(alice, bob)
            await bob.join(room)
            await alice.send(room, "before")
            await received(b_events, room, 1)
            bob.drop_connection()
            await b_events.next(Disconnected, timeout=30)
            for i in range(3):
                await alice.send(room, f"while away {i}")
            back = await b_events.next(Connected, timeout=60)
            assert back.reconnected
            got = await received(b_events, room, 3)
            assert [e.message.body for e in got] == [f"while away {i}" for i in range(3)]
            assert {e.source for e in got} <= {"resume", "live"}
            await alice.send(room, "after")
            [live] = await received(b_events, room, 1)
            assert (live.message.body, live.message.seq) == ("after", 5)

    run(scenario)


def test_refused_actions_raise_with_the_protocol_code_and_keep_the_connection(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with chat_user(e2e_target, "alice") as (alice, _), chat_user(e2e_target, "carol") as (carol, _):
            room = (await alice.api.create_room(f"sdk-{secrets.token_hex(3)}")).id
            with pytest.raises(ActionRefused) as outsider:
                await carol.send(room, "let me in")
            assert outsider.value.code in ("not_a_member", "room_not_found")
            assert outsider.value.action == "sendMessage"

            with pytest.raises(ActionRefused) as too_long:
                await alice.send(room, "x" * 5000)
            assert too_long.value.code == "body_too_long"
            assert too_long.value.extra.get("max") == 4000

            ack = await alice.send(room, "mine")
            await carol.api.join_room(room)
            with pytest.raises(ActionRefused) as not_author:
                await carol.edit(room, ack.seq, "hijacked")
            assert not_author.value.code == "not_author"

            await carol.join(room)
            with pytest.raises(ActionRefused) as beyond:
                await carol.edit(room, 99, "nothing there")
            assert beyond.value.code == "message_not_found"
            assert await carol.ping()  # still connected and usable
            assert (await carol.send(room, "hi")).seq == 2

    run(scenario)


def test_tokens_are_refreshed_before_expiry_and_after_a_refused_handshake(e2e_target: Target) -> None:
    async def scenario() -> None:
        client = ChatClient(e2e_target.http_url, e2e_target.ws_url)
        try:
            await client.register(f"tok{secrets.token_hex(4)}", PASSWORD)
            tokens = client.api.tokens
            assert tokens is not None
            assert tokens.refresh_token is not None
            # An access token that is about to expire is replaced before it is used.
            client.api.use_session(tokens.access_token, tokens.refresh_token, expires_at=time.time() + 5)
            fresh = await client.api.access_token()
            assert fresh != tokens.access_token
            # A token the server refuses (403 at the handshake): one refresh, then connected.
            current = client.api.tokens
            assert current is not None
            client.api.use_session("not-a-jwt", current.refresh_token)
            await client.connect()
            assert client.api.tokens is not None
            assert client.api.tokens.access_token not in ("not-a-jwt", fresh)
            assert await client.ping()
        finally:
            await client.close()

    run(scenario)


def test_the_session_ends_when_the_refresh_token_is_revoked(e2e_target: Target) -> None:
    """Log out everywhere (another device): the live socket keeps working until it drops; then the
    reconnect's handshake is refused, the refresh is refused, and the client closes with
    SessionExpired instead of retrying forever."""

    async def scenario() -> None:
        async with chat_user(e2e_target, "eve") as (phone, events):
            laptop, _ = await second_device(e2e_target, phone)
            await laptop.api.logout(everywhere=True)
            await laptop.close()
            phone.drop_connection()
            closed = await events.next(Closed, timeout=60)
            assert isinstance(closed.error, SessionExpired)
            assert phone.state.value == "closed"

    run(scenario)


def test_change_password_keeps_this_client_signed_in_and_ends_the_other_sessions(e2e_target: Target) -> None:
    """``HttpApi.change_password``: this client adopts the fresh pair (its calls keep working), the
    other device's session ends (SessionExpired once its socket drops), the new password signs in."""

    async def scenario() -> None:
        async with chat_user(e2e_target, "pw") as (phone, events):
            laptop, laptop_events = await second_device(e2e_target, phone)
            try:
                await laptop_events.next(Connected, timeout=30)
                before = laptop.api.tokens
                assert before is not None
                with pytest.raises(ApiError) as wrong:
                    await laptop.api.change_password("not my password", "a new secret 2")
                assert (wrong.value.status, wrong.value.code) == (401, "invalid_credentials")
                user = await laptop.api.change_password(PASSWORD, "a new secret 2")
                assert phone.user is not None
                assert user.id == phone.user.id
                after = laptop.api.tokens
                assert after is not None
                assert after.access_token != before.access_token
                assert after.refresh_token != before.refresh_token
                assert (await laptop.api.me()).id == user.id  # still signed in here
                # The server closed this client's socket too: it reconnects with the new pair.
                await laptop_events.next(Disconnected, timeout=30)
                await laptop_events.next(Connected, timeout=30)
                assert await laptop.ping()
            finally:
                await laptop.close()
            closed = await events.next(Closed, timeout=60)  # the server closed the phone's socket
            assert isinstance(closed.error, SessionExpired)
            other = HttpApi(e2e_target.http_url)
            try:
                await other.login(user.handle, "a new secret 2")
            finally:
                await other.close()

    run(scenario)


def test_presence_follows_connections(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with chat_user(e2e_target, "alice") as (alice, a_events):
            bob = ChatClient(e2e_target.http_url, e2e_target.ws_url)
            try:
                await bob.register(f"bob{secrets.token_hex(4)}", PASSWORD)
                await shared_room(alice, bob)
                assert bob.user is not None
                await bob.connect()
                online = await a_events.next(PresenceChanged, timeout=30)
                assert (online.presence.user_id, online.presence.status) == (bob.user.id, "online")
                assert online.presence.version is not None
            finally:
                await bob.close()
            offline = await a_events.next(PresenceChanged, timeout=30)
            assert (offline.presence.user_id, offline.presence.status) == (bob.user.id, "offline")
            assert offline.presence.version is not None
            assert online.presence.version is not None
            assert offline.presence.version > online.presence.version
            seen = alice.presence_of(bob.user.id)
            assert seen is not None
            assert seen.status == "offline"

    run(scenario)


def test_presence_snapshot_lists_who_is_online_with_the_frames_versions(e2e_target: Target) -> None:
    """``ChatClient.presence(room)`` (the ``presence`` action, docs/protocol.md "Presence
    snapshots") against the real server: bob is listed once however many devices he has, with
    the version his ``online`` frame carried; after he leaves he is not listed."""

    async def scenario() -> None:
        async with alice_and_bob(e2e_target) as (alice, a_events, bob, _):
            room = await shared_room(alice, bob)
            assert alice.user is not None
            assert bob.user is not None
            phone, _ = await second_device(e2e_target, bob)
            try:
                online = {p.user_id: p for p in await alice.presence(room)}
                assert set(online) == {alice.user.id, bob.user.id}
                heard = alice.presence_of(bob.user.id)
                assert heard is not None
                assert online[bob.user.id].version == heard.version  # the one merge rule
                assert online[bob.user.id].handle == bob.user.handle
            finally:
                await phone.close()
            await bob.close()
            for _ in range(5):  # the snapshot's entry was applied (and emitted) first
                changed = await a_events.next(PresenceChanged, timeout=30)
                if changed.presence.status == "offline":
                    break
            assert (changed.presence.user_id, changed.presence.status) == (bob.user.id, "offline")
            assert {p.user_id for p in await alice.presence(room)} == {alice.user.id}

    run(scenario)


def test_history_pages_backwards_and_join_since_replays(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with chat_user(e2e_target, "alice", ClientOptions(resume_page=4)) as (alice, a_events):
            room = (await alice.api.create_room(f"sdk-{secrets.token_hex(3)}")).id
            for i in range(12):
                await alice.send(room, f"h{i}")
            await received(a_events, room, 12)
            newest_first = [m.body async for m in alice.iter_history(room, page=5)]
            assert newest_first == [f"h{i}" for i in reversed(range(12))]

            reader, r_events = await second_device(e2e_target, alice, ClientOptions(resume_page=4))
            try:
                await reader.join(room, since_seq=3)  # "I have up to 3": the rest, paged by resume
                got = await received(r_events, room, 9)
                assert [e.message.seq for e in got] == list(range(4, 13))
                assert {e.source for e in got} == {"resume"}
            finally:
                await reader.close()

    run(scenario)


def test_the_readme_echo_bot_answers(e2e_target: Target) -> None:
    """clients/python/examples/echo_bot.py (the README's example) as its own process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    bot_script = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples" / "echo_bot.py"

    async def scenario() -> None:
        async with chat_user(e2e_target, "alice") as (alice, a_events):
            bot = ChatClient(e2e_target.http_url, e2e_target.ws_url)
            handle = f"bot{secrets.token_hex(4)}"
            await bot.register(handle, PASSWORD)
            room = (await alice.api.create_room(f"sdk-{secrets.token_hex(3)}")).id
            await bot.api.join_room(room)
            await bot.close()
            env = {
                **os.environ,
                "CHATFLOW_HTTP_URL": e2e_target.http_url,
                "CHATFLOW_WS_URL": e2e_target.ws_url,
                "BOT_HANDLE": handle,
                "BOT_PASSWORD": PASSWORD,
            }
            proc = subprocess.Popen([sys.executable, str(bot_script)], env=env)
            try:
                await alice.join(room)
                # The bot may not be listening yet: say it again until it answers (bounded).
                for attempt in range(30):
                    await alice.send(room, f"ping {attempt}")
                    try:
                        answer = await a_events.next(MessageReceived, timeout=2)
                        while answer.own:
                            answer = await a_events.next(MessageReceived, timeout=2)
                        break
                    except TimeoutError:
                        assert proc.poll() is None, "the echo bot exited"
                else:
                    raise AssertionError("the echo bot never answered")
                assert answer.message.sender_handle == handle
                assert answer.message.body is not None
                assert answer.message.body.startswith("echo: ping ")
            finally:
                proc.terminate()
                proc.wait(timeout=30)

    run(scenario)
