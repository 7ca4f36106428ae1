"""The Python client against a SCRIPTED WebSocket server on loopback, for server behaviour the
local stack cannot be made to produce on demand: a live delivery lost in the middle (gap), presence
frames crossing on the wire, the upcoming presence snapshot and ``resync`` frames, ``unavailable``
with ``retryAfterMs``, a lost ack, API Gateway's own error frame. The test plays the server; the
real server's side of these rules is tested in tests/integration and tests/e2e.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from chatflow_client import (
    ActionRefused,
    ChatClient,
    ClientOptions,
    Connected,
    ConnectionState,
    Disconnected,
    EventStream,
    MessageReceived,
    PositionReset,
    PresenceChanged,
    ServerError,
    User,
)

ROOM = "5a6b56b2-533e-4245-8d86-85666b75c5c8"
ME = User(id="me", handle="me")
FAST = ClientOptions(
    gap_wait_s=0.05,
    ack_timeout_s=0.5,
    request_timeout_s=2.0,
    reconnect_initial_s=0.01,
    reconnect_max_s=0.05,
    ws_ping_interval_s=None,
)
Frame = dict[str, Any]


class ScriptedServer:
    """Accepts the client's sockets and lets the test read what it sends and answer it."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Frame] = asyncio.Queue()
        self.connections: list[ServerConnection] = []
        self.opened = asyncio.Event()
        self._server: Server | None = None

    async def start(self) -> str:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/local"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections.append(connection)
        self.opened.set()
        async for raw in connection:
            self.inbox.put_nowait(json.loads(raw))

    async def recv(self, action: str | None = None, timeout: float = 5.0) -> Frame:
        """The next frame the client sent (of ``action``, skipping others)."""

        async def find() -> Frame:
            while True:
                frame = await self.inbox.get()
                if action is None or frame.get("action") == action:
                    return frame

        return await asyncio.wait_for(find(), timeout)

    async def push(self, frame: Frame) -> None:
        await self.connections[-1].send(json.dumps(frame))

    async def reply(self, request: Frame, frame: Frame) -> None:
        await self.push({**frame, "requestId": request["requestId"]})

    def drop(self) -> None:
        self.opened.clear()
        self.connections[-1].transport.abort()


@asynccontextmanager
async def scripted(
    options: ClientOptions = FAST,
) -> AsyncIterator[tuple[ScriptedServer, ChatClient, EventStream]]:
    server = ScriptedServer()
    url = await server.start()
    client = ChatClient("http://127.0.0.1:9", url, options=options)  # HTTP is never called here
    client.api.use_session("header.payload.signature", None, user=ME)
    events = client.events()
    try:
        await client.connect()
        yield server, client, events
    finally:
        await client.close()
        await server.stop()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(scenario(), 30)

    asyncio.run(bounded())


def message(seq: int, body: str | None = None, sender: str = "u1") -> Frame:
    return {
        "id": f"m{seq}",
        "roomId": ROOM,
        "seq": seq,
        "senderId": sender,
        "senderHandle": sender,
        "clientMessageId": f"c{seq}",
        "body": body or f"body {seq}",
        "createdAt": "2026-11-25T17:00:07Z",
        "editedAt": None,
        "deletedAt": None,
    }


def resumed(since: int, messages: list[Frame], *, more: bool = False, last_seq: int | None = None) -> Frame:
    """A ``resumed`` reply: the messages after ``since``."""
    nxt = messages[-1]["seq"] if messages else since
    return {
        "type": "resumed",
        "roomId": ROOM,
        "sinceSeq": since,
        "messages": messages,
        "more": more,
        "nextSinceSeq": nxt,
        "lastSeq": nxt if last_seq is None else last_seq,
    }


async def joined_at(server: ScriptedServer, client: ChatClient, since: int) -> None:
    """``join(ROOM, since_seq=since)`` with the server's replies (joined, an empty resume)."""
    join = asyncio.ensure_future(client.join(ROOM, since_seq=since))
    request = await server.recv("joinRoom")
    await server.reply(request, {"type": "joined", "roomId": ROOM})
    resume = await server.recv("resume")
    assert resume["sinceSeq"] == since
    await server.reply(resume, resumed(since, []))
    await join


async def seqs(events: EventStream, count: int) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for _ in range(count):
        got = await events.next(MessageReceived, timeout=5)
        out.append((got.message.seq, got.source))
    return out


def test_a_gap_is_filled_with_resume_and_nothing_is_delivered_twice() -> None:
    async def scenario() -> None:
        async with scripted() as (server, client, events):
            await joined_at(server, client, 0)
            await server.push({"type": "message", "message": message(1)})
            await server.push({"type": "message", "message": message(3)})  # 2 was lost
            resume = await server.recv("resume")
            assert resume["sinceSeq"] == 1
            await server.push({"type": "message", "message": message(4)})  # meanwhile, live
            await server.reply(
                resume,
                resumed(1, [message(2), message(3), message(4)]),
            )
            assert await seqs(events, 4) == [(1, "live"), (2, "resume"), (3, "live"), (4, "live")]
            assert client.room(ROOM).last_seq == 4
            assert client.room(ROOM).waiting == 0

    run(scenario)


def test_resume_pages_until_more_is_false_and_a_wrong_position_is_reset() -> None:
    async def scenario() -> None:
        async with scripted() as (server, client, events):
            join = asyncio.ensure_future(client.join(ROOM, since_seq=40))
            await server.reply(await server.recv("joinRoom"), {"type": "joined", "roomId": ROOM})
            resume = await server.recv("resume")
            await server.reply(
                resume,
                {
                    "type": "error",
                    "code": "seq_beyond_last",
                    "message": "beyond",
                    "action": "resume",
                    "lastSeq": 2,
                },
            )
            reset = await events.next(PositionReset, timeout=5)
            assert reset.last_seq == 2
            first = await server.recv("resume")
            assert first["sinceSeq"] == 2
            await server.reply(
                first,
                resumed(2, [message(3)], more=True, last_seq=4),
            )
            second = await server.recv("resume")
            assert second["sinceSeq"] == 3
            await server.reply(
                second,
                resumed(3, [message(4)]),
            )
            await join
            assert await seqs(events, 2) == [(3, "resume"), (4, "resume")]

    run(scenario)


def test_presence_frames_that_cross_on_the_wire_are_dropped_by_version() -> None:
    async def scenario() -> None:
        async with scripted() as (server, client, events):
            await server.push({"type": "presence", "userId": "u1", "status": "online", "version": 7})
            await server.push({"type": "presence", "userId": "u1", "status": "offline", "version": 6})
            await server.push({"type": "presence", "userId": "u1", "status": "offline", "version": 8})
            first = await events.next(PresenceChanged, timeout=5)
            second = await events.next(PresenceChanged, timeout=5)
            assert (first.presence.status, first.presence.version) == ("online", 7)
            assert (second.presence.status, second.presence.version) == ("offline", 8)
            assert client.presence_of("u1") == second.presence

    run(scenario)


def test_presence_snapshots_in_joined_and_on_request() -> None:
    async def scenario() -> None:
        async with scripted() as (server, client, events):
            join = asyncio.ensure_future(client.join(ROOM, since_seq=0))
            request = await server.recv("joinRoom")
            await server.reply(
                request,
                {
                    "type": "joined",
                    "roomId": ROOM,
                    "presence": {"online": [{"userId": "u2", "handle": "bo", "version": 3}], "more": False},
                },
            )
            resume = await server.recv("resume")
            await server.reply(
                resume,
                resumed(0, []),
            )
            await join
            changed = await events.next(PresenceChanged, timeout=5)
            assert (changed.presence.user_id, changed.presence.handle, changed.presence.version) == (
                "u2",
                "bo",
                3,
            )

            asked = asyncio.ensure_future(client.presence(ROOM))
            request = await server.recv("presence")
            assert request["roomId"] == ROOM
            await server.reply(
                request,
                {
                    "type": "presenceSnapshot",
                    "roomId": ROOM,
                    "more": True,
                    "cursor": "p2",
                    "online": [{"userId": "u2", "handle": "bo", "version": 2}],
                },  # older than known
            )
            again = await server.recv("presence")
            assert again["cursor"] == "p2"
            await server.reply(
                again,
                {
                    "type": "presenceSnapshot",
                    "roomId": ROOM,
                    "more": False,
                    "online": [{"userId": "u3", "handle": "cy", "version": 1}],
                },
            )
            assert [p.user_id for p in await asked] == ["u2", "u3"]
            stale = client.presence_of("u2")
            assert stale is not None
            assert stale.version == 3  # the snapshot's older entry did not win
            assert {p.user_id for p in client.online_users()} == {"u2", "u3"}

            refused = asyncio.ensure_future(client.presence(ROOM))
            request = await server.recv("presence")
            await server.reply(
                request, {"type": "error", "code": "unknown_action", "message": "no", "validActions": []}
            )
            with pytest.raises(ActionRefused) as old_server:
                await refused
            assert old_server.value.code == "unknown_action"

    run(scenario)


def test_resync_resubscribes_and_resumes_every_room() -> None:
    async def scenario() -> None:
        async with scripted() as (server, client, _):
            await joined_at(server, client, 5)
            await server.push({"type": "resync"})
            rejoin = await server.recv("joinRoom")
            assert rejoin["roomId"] == ROOM
            await server.reply(rejoin, {"type": "joined", "roomId": ROOM})
            resume = await server.recv("resume")
            assert resume["sinceSeq"] == 5
            await server.reply(
                resume,
                resumed(5, []),
            )

    run(scenario)


def test_unavailable_and_lost_acks_resend_the_same_client_message_id() -> None:
    async def scenario() -> None:
        async with scripted() as (server, client, events):
            await joined_at(server, client, 0)
            sending = client.enqueue(ROOM, "hello")
            first = await server.recv("sendMessage")
            await server.reply(
                first, {"type": "error", "code": "unavailable", "message": "cache down", "retryAfterMs": 20}
            )
            second = await server.recv("sendMessage")  # after retryAfterMs
            assert second["clientMessageId"] == first["clientMessageId"]
            # No answer at all (the ack was lost): resent after ack_timeout_s, same id again.
            third = await server.recv("sendMessage")
            assert third["clientMessageId"] == first["clientMessageId"]
            assert third["requestId"] != second["requestId"]
            ack = {
                "type": "ack",
                "clientMessageId": first["clientMessageId"],
                "roomId": ROOM,
                "seq": 1,
                "messageId": "m1",
                "createdAt": "2026-11-25T17:00:07Z",
                "duplicate": True,
            }
            await server.reply(third, ack)
            await server.reply(second, ack)  # the late ack of an earlier attempt: ignored
            result = await sending
            assert (result.seq, result.duplicate, sending.attempts) == (1, True, 3)
            own = await events.next(MessageReceived, timeout=5)
            assert (own.message.seq, own.message.body, own.own, own.source) == (1, "hello", True, "ack")
            # The second ack did not produce an error event or a second message.
            await asyncio.sleep(0.1)
            assert not [e for e in events.drain() if isinstance(e, ServerError | MessageReceived)]

    run(scenario)


def test_after_a_reconnect_rooms_are_resumed_before_unacked_sends_go_again_in_order() -> None:
    async def scenario() -> None:
        async with scripted() as (server, client, events):
            await joined_at(server, client, 0)
            one, two = client.enqueue(ROOM, "one"), client.enqueue(ROOM, "two")
            sent = await server.recv("sendMessage")
            assert sent["body"] == "one"  # one in flight: "two" waits for one's ack
            server.drop()
            await server.opened.wait()
            rejoin = await server.recv()  # first the room: subscribe, then resume
            assert rejoin["action"] == "joinRoom"
            await server.reply(rejoin, {"type": "joined", "roomId": ROOM})
            resume = await server.recv()
            assert (resume["action"], resume["sinceSeq"]) == ("resume", 0)
            await server.reply(
                resume,
                resumed(0, [message(1, "one", "me")]),
            )
            resent = await server.recv()
            assert (resent["action"], resent["body"], resent["clientMessageId"]) == (
                "sendMessage",
                "one",
                sent["clientMessageId"],
            )
            await server.reply(
                resent,
                {
                    "type": "ack",
                    "clientMessageId": resent["clientMessageId"],
                    "roomId": ROOM,
                    "seq": 1,
                    "messageId": "m1",
                    "createdAt": None,
                    "duplicate": True,
                },
            )
            nxt = await server.recv()
            assert nxt["body"] == "two"
            await server.reply(
                nxt,
                {
                    "type": "ack",
                    "clientMessageId": nxt["clientMessageId"],
                    "roomId": ROOM,
                    "seq": 2,
                    "messageId": "m2",
                    "createdAt": None,
                    "duplicate": False,
                },
            )
            assert ((await one).seq, (await two).seq) == (1, 2)
            assert await seqs(events, 2) == [(1, "resume"), (2, "ack")]

    run(scenario)


def test_gateway_errors_and_unknown_frames_do_not_break_the_connection() -> None:
    async def scenario() -> None:
        async with scripted() as (server, client, events):
            await server.push({"message": "Internal server error", "connectionId": "x", "requestId": "gw"})
            await server.push({"type": "somethingNew", "x": 1})
            await server.connections[-1].send("not json")
            error = await events.next(ServerError, timeout=5)
            assert error.code == "gateway_error"
            pinging = asyncio.ensure_future(client.ping())
            request = await server.recv("ping")
            await server.reply(request, {"type": "pong", "serverTime": 42})
            assert await pinging == 42

    run(scenario)


def test_disconnect_keeps_queued_sends_and_connect_resumes_before_sending() -> None:
    async def scenario() -> None:
        async with scripted() as (server, client, events):
            await joined_at(server, client, 0)
            await client.disconnect()
            assert client.state is ConnectionState.IDLE
            assert [e for e in events.drain() if isinstance(e, Disconnected)] == [
                Disconnected(1000, "client disconnected", will_reconnect=False)
            ]
            waiting = client.enqueue(ROOM, "written offline")
            await asyncio.sleep(0.1)
            assert server.inbox.empty()  # nothing goes out while disconnected
            await client.connect()
            assert (await events.next(Connected, timeout=5)).reconnected
            rejoin = await server.recv()
            assert rejoin["action"] == "joinRoom"
            await server.reply(rejoin, {"type": "joined", "roomId": ROOM})
            resume = await server.recv()
            assert resume["action"] == "resume"
            await server.reply(
                resume,
                resumed(0, [message(1)]),
            )
            send = await server.recv()
            assert (send["action"], send["body"]) == ("sendMessage", "written offline")
            await server.reply(
                send,
                {
                    "type": "ack",
                    "clientMessageId": send["clientMessageId"],
                    "roomId": ROOM,
                    "seq": 2,
                    "messageId": "m2",
                    "createdAt": None,
                },
            )
            assert (await waiting).seq == 2
            assert await seqs(events, 2) == [(1, "resume"), (2, "ack")]

    run(scenario)
