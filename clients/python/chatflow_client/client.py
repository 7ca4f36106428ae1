"""The realtime client: one WebSocket, kept open, with the protocol's rules built in.

What it guarantees (docs/clients.md):

* **Send order.** The server processes the frames of one connection concurrently, so two
  ``sendMessage`` frames sent back-to-back may be stored in either order. Each room has a send
  queue with ONE send in flight: the next message goes out when the previous one is acked.
* **Idempotent resend.** An unacked send is resent with the SAME ``clientMessageId`` after
  ``ack_timeout_s`` and after every reconnect; the server stores it once and acks the original.
* **Every message once, in order.** Messages are released per room in ``seq`` order, each
  ``(room_id, seq)`` once; a gap (a late or lost live delivery) is filled with ``resume``.
* **Reconnect.** A lost connection is reopened with exponential backoff and jitter (honouring
  ``Retry-After`` / ``retryAfterMs``); then every subscribed room is re-joined, every known room
  resumed from its position (paging until ``more`` is false), and only then are unacked sends
  resent, in order.
* **Tokens.** The access token is refreshed before it expires; a handshake refused with 403 is
  retried once after a refresh; a refused refresh ends the session (:class:`SessionExpired`).
* **Presence** is applied by version (stale frames are dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import secrets
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from chatflow_client import wire
from chatflow_client.errors import (
    ActionRefused,
    ApiError,
    ChatflowClientError,
    ClientClosed,
    HandshakeRefused,
    RequestTimeout,
    SessionExpired,
)
from chatflow_client.events import (
    Closed,
    Connected,
    Disconnected,
    Event,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    PositionReset,
    PresenceChanged,
    ReadPositionChanged,
    ServerError,
    TypingChanged,
)
from chatflow_client.http import HttpApi
from chatflow_client.models import (
    Ack,
    ConnectionState,
    HistoryPage,
    Message,
    Presence,
    RoomState,
    User,
)
from chatflow_client.state import Backoff, PresenceBook, SeqOrder

log = logging.getLogger("chatflow_client")

E = TypeVar("E", bound=Event)
Source = Literal["live", "resume", "ack"]

#: Server-side failures: the same frame may be sent again (sends are idempotent).
RETRYABLE_CODES = frozenset(
    {"unavailable", "internal_error", "cache_unavailable", "fanout_unavailable", "service_unavailable"}
)
#: The account can no longer act: no retry, no reconnect will help.
SESSION_CODES = frozenset({"account_disabled", "token_revoked"})


@dataclass(frozen=True)
class ClientOptions:
    #: Resend an unacked message (same clientMessageId) after this long.
    ack_timeout_s: float = 10.0
    #: Wait this long for the reply to any other request before trying again.
    request_timeout_s: float = 15.0
    #: Attempts per request (timeouts and server-side failures; a lost connection does not count).
    request_attempts: int = 4
    #: Reconnect backoff: the n-th attempt waits between half and all of min(max, initial * 2**n).
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    #: ``ping`` this often (API Gateway closes sockets idle for 10 minutes).
    keepalive_s: float = 240.0
    #: WebSocket protocol pings to notice a dead network (None: off, e.g. behind a proxy that
    #: answers them itself).
    ws_ping_interval_s: float | None = 20.0
    #: Wait this long for a missing seq to arrive live before asking the server (resume).
    gap_wait_s: float = 1.0
    resume_page: int = 100
    #: Rooms resumed at once after a reconnect (resume counts against the request rate limit).
    resume_concurrency: int = 4
    #: Someone's typing indicator lapses after this long without a new ``typing`` frame.
    typing_ttl_s: float = 6.0
    #: ``typing(room, True)`` sends at most one frame per this interval.
    typing_interval_s: float = 3.0
    #: Refresh the access token when less than this much of its life is left.
    token_margin_s: float = 60.0
    open_timeout_s: float = 30.0


class _ConnectionLost(Exception):
    """Internal: the socket a request went out on closed before the reply."""


@dataclass(eq=False)
class _Conn:
    """One open socket; ``lost`` is set once the client has finished with it (state cleared),
    so a sender that saw it close waits for that instead of spinning."""

    ws: ClientConnection
    lost: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class OutgoingMessage:
    """A queued send. ``await`` it (or :attr:`ack`) for the :class:`Ack`; it fails with
    :class:`ActionRefused` when the server refuses it, :class:`ClientClosed` when the client
    closes first. Awaiting it can be cancelled without unsending it."""

    room_id: str
    body: str
    client_message_id: str
    ack: asyncio.Future[Ack]
    #: Transmissions so far (resends included).
    attempts: int = 0

    def __await__(self) -> Generator[Any, None, Ack]:
        return asyncio.shield(self.ack).__await__()


@dataclass(eq=False)
class _Room:
    room_id: str
    order: SeqOrder[tuple[Message, Source]] = field(default_factory=SeqOrder)
    read_seq: int | None = None
    subscribed: bool = False
    queue: deque[OutgoingMessage] = field(default_factory=deque)
    sender: asyncio.Task[None] | None = None
    #: Set while connected and resumed: sends may go out.
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    fill: asyncio.Task[None] | None = None
    refill: bool = False
    gap_timer: asyncio.TimerHandle | None = None
    typing: dict[str, tuple[str | None, asyncio.TimerHandle]] = field(default_factory=dict)
    typing_sent_at: float = 0.0
    typing_active: bool = False


class EventStream(AsyncIterator[Event]):
    """Every event from the moment :meth:`ChatClient.events` was called, in order; ends when the
    client closes. Unbounded: consume it, or :meth:`close` it."""

    def __init__(self, client: ChatClient) -> None:
        self._client = client
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._done = False

    def _put(self, event: Event | None) -> None:
        self._queue.put_nowait(event)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            self._done = True
            raise StopAsyncIteration
        return event

    async def next(self, kind: type[E], *, timeout: float | None = None) -> E:
        """The next event of type ``kind`` (others are skipped); TimeoutError after ``timeout``."""

        async def find() -> E:
            async for event in self:
                if isinstance(event, kind):
                    return event
            raise ClientClosed("the client closed")

        return await asyncio.wait_for(find(), timeout)

    def drain(self) -> list[Event]:
        """The events already received, without waiting."""
        out: list[Event] = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event is None:
                self._done = True
                break
            out.append(event)
        return out

    def close(self) -> None:
        self._client._streams.discard(self)
        self._done = True


Callback = Callable[[Any], Awaitable[None] | None]


class ChatClient:
    """A Chatflow client: the HTTP API (:attr:`api`) and one managed WebSocket.

    ``http_url``: the HTTP API base URL; ``ws_url``: the WebSocket URL (``wss://.../{stage}``),
    the access token is added as the ``token`` query parameter.
    """

    def __init__(
        self,
        http_url: str,
        ws_url: str,
        *,
        options: ClientOptions | None = None,
        api: HttpApi | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.options = options or ClientOptions()
        self.api = api or HttpApi(http_url, session=session, token_margin_s=self.options.token_margin_s)
        self.ws_url = ws_url
        self._rooms: dict[str, _Room] = {}
        self._presence = PresenceBook()
        self._streams: set[EventStream] = set()
        self._callbacks: list[tuple[type[Event], Callback]] = []
        self._callback_queue: deque[Event] = deque()
        self._callback_task: asyncio.Task[None] | None = None
        self._state = ConnectionState.IDLE
        self._conn: _Conn | None = None
        #: requestIds given up on (timed out, resent): their late replies are not server errors.
        self._retired: OrderedDict[str, None] = OrderedDict()
        self._connected = asyncio.Event()
        self._closed_event = asyncio.Event()
        self._by_rid: dict[str, asyncio.Future[wire.Frame]] = {}
        self._by_cmid: dict[str, asyncio.Future[wire.Frame]] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        #: disconnect() was called: the socket stays closed until connect().
        self._suspended = False
        self._connections = 0
        self._rid_prefix = secrets.token_hex(3)
        self._rid_counter = itertools.count(1)

    # --- session (delegated to the HTTP API) -----------------------------------------------------

    @property
    def user(self) -> User | None:
        return self.api.user

    async def login(self, handle: str, password: str) -> User:
        return await self.api.login(handle, password)

    async def register(self, handle: str, password: str, *, display_name: str | None = None) -> User:
        return await self.api.register(handle, password, display_name=display_name)

    async def history(
        self, room_id: str, *, before: int | None = None, after: int | None = None, limit: int | None = None
    ) -> HistoryPage:
        """One page of stored messages over HTTP (see :meth:`HttpApi.history`)."""
        return await self.api.history(room_id, before=before, after=after, limit=limit)

    async def iter_history(self, room_id: str, *, page: int = 50) -> AsyncIterator[Message]:
        """Every stored message of a room, newest first, paging backwards over HTTP."""
        before: int | None = None
        while True:
            result = await self.api.history(room_id, before=before, limit=page)
            for message in reversed(result.messages):
                yield message
            if result.prev_cursor is None:
                return
            before = result.prev_cursor

    # --- state ------------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    def room(self, room_id: str) -> RoomState:
        """A snapshot of what the client knows about a room."""
        r = self._room(room_id)
        return RoomState(
            room_id=room_id,
            last_seq=r.order.last_seq,
            read_seq=r.read_seq,
            subscribed=r.subscribed,
            typing={uid: handle for uid, (handle, _) in r.typing.items()},
            pending_sends=tuple(o.client_message_id for o in r.queue),
            waiting=r.order.waiting,
        )

    def rooms(self) -> list[RoomState]:
        return [self.room(room_id) for room_id in list(self._rooms)]

    def presence_of(self, user_id: str) -> Presence | None:
        return self._presence.get(user_id)

    def online_users(self) -> list[Presence]:
        return self._presence.online()

    # --- events -----------------------------------------------------------------------------------

    def events(self) -> EventStream:
        """A stream of every event from now on (subscribe before :meth:`connect` to miss none)."""
        stream = EventStream(self)
        self._streams.add(stream)
        if self._closing:
            stream._put(None)
        return stream

    def on(self, kind: type[E], callback: Callable[[E], Awaitable[None] | None]) -> Callable[[], None]:
        """Call ``callback`` (plain or async) for every event of type ``kind``, in order: an async
        callback is awaited before the next event is handed out. Returns an unsubscribe function."""
        entry: tuple[type[Event], Callback] = (kind, callback)
        self._callbacks.append(entry)
        return lambda: self._callbacks.remove(entry) if entry in self._callbacks else None

    def _emit(self, event: Event) -> None:
        for stream in list(self._streams):
            stream._put(event)
        if self._callbacks:
            self._callback_queue.append(event)
            if self._callback_task is None or self._callback_task.done():
                self._callback_task = asyncio.get_running_loop().create_task(self._run_callbacks())

    async def _run_callbacks(self) -> None:
        while self._callback_queue:
            event = self._callback_queue.popleft()
            for kind, callback in list(self._callbacks):
                if not isinstance(event, kind):
                    continue
                try:
                    result = callback(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("event callback %r failed on %s", callback, type(event).__name__)

    # --- connection -------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the WebSocket; returns once it is open. A refusal of the FIRST attempt raises
        (:class:`HandshakeRefused`, :class:`SessionExpired`, ``OSError``); after that, the client
        reconnects by itself until :meth:`close`."""
        if self._closing:
            raise ClientClosed("the client is closed")
        if self._supervisor is not None and not self._supervisor.done():
            await self._wait_connected()
            return
        if self.api.user is None:
            await self.api.me()
        self._suspended = False
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(first))
        await first

    async def _supervise(self, first: asyncio.Future[None]) -> None:
        try:
            await self._keep_connected(first)
        except asyncio.CancelledError:
            if not first.done():  # disconnect() or close() during the first handshake
                first.set_exception(ClientClosed("disconnected before the connection opened"))
            raise

    async def _keep_connected(self, first: asyncio.Future[None]) -> None:
        backoff = Backoff(self.options.reconnect_initial_s, self.options.reconnect_max_s)
        refreshed = False
        while not self._closing and not self._suspended:
            self._set_state(ConnectionState.RECONNECTING if self._connections else ConnectionState.CONNECTING)
            delay: float | None = None
            try:
                ws = await self._open()
            except HandshakeRefused as exc:
                if exc.status in (401, 403) and not refreshed:
                    refreshed = True  # an expired or revoked token: one refresh, then once more
                    try:
                        await self.api.refresh()
                        continue
                    except SessionExpired as ended:
                        await self._fail(first, ended)
                        return
                    except Exception as other:  # the refresh itself could not reach the API
                        error: Exception = other
                elif exc.status in (401, 403):
                    await self._fail(first, SessionExpired(f"the server refuses this session ({exc.status})"))
                    return
                else:
                    error = exc
                    delay = exc.retry_after_s
            except SessionExpired as exc:
                await self._fail(first, exc)
                return
            except (OSError, TimeoutError, InvalidHandshake, aiohttp.ClientError, ApiError) as exc:
                error = exc  # the network, the handshake, or a refresh the API could not answer
            else:
                refreshed = False
                if not first.done():
                    first.set_result(None)
                lived = await self._run_connection(ws)
                if lived >= 1.0:  # not a server that accepts then drops at once: start over
                    backoff.reset()
                if not self._closing:
                    await asyncio.sleep(backoff.next_delay())
                continue
            if not first.done():  # the first attempt failed: tell the caller of connect()
                self._set_state(ConnectionState.IDLE)
                self._supervisor = None
                first.set_exception(error)
                return
            wait = max(backoff.next_delay(), delay or 0.0)
            log.info("reconnecting in %.1f s after %r", wait, error)
            await asyncio.sleep(wait)

    async def _fail(self, first: asyncio.Future[None], error: Exception) -> None:
        if not first.done():
            self._set_state(ConnectionState.IDLE)
            self._supervisor = None
            first.set_exception(error)
            return
        self._supervisor = None  # _shutdown would otherwise cancel the running task: us
        await self._shutdown(error)

    async def _open(self) -> ClientConnection:
        token = await self.api.access_token()
        sep = "&" if "?" in self.ws_url else "?"
        url = f"{self.ws_url}{sep}token={quote(token, safe='')}"
        try:
            return await connect(
                url,
                open_timeout=self.options.open_timeout_s,
                ping_interval=self.options.ws_ping_interval_s,
                ping_timeout=self.options.ws_ping_interval_s,
                compression=None,  # API Gateway does not negotiate permessage-deflate
                max_size=4 * 1024 * 1024,
                max_queue=None,
            )
        except InvalidStatus as exc:
            response = exc.response
            retry_after = response.headers.get("Retry-After", "")
            try:
                message = json.loads(response.body or b"{}").get("message", "")
            except (ValueError, AttributeError):
                message = ""
            raise HandshakeRefused(
                response.status_code,
                str(message),
                float(retry_after) if retry_after.isdigit() else None,
            ) from None
        except InvalidURI as exc:
            raise ValueError(f"invalid WebSocket URL {self.ws_url!r}: {exc}") from None

    async def _run_connection(self, ws: ClientConnection) -> float:
        """Serve one open socket until it closes; returns how long it lived (s)."""
        loop = asyncio.get_running_loop()
        opened = loop.time()
        conn = self._conn = _Conn(ws)
        reconnected = self._connections > 0
        self._connections += 1
        self._connected.set()
        self._set_state(ConnectionState.CONNECTED)
        self._emit(Connected(reconnected))
        keepalive = self._spawn(self._keepalive(ws))
        prepare = self._spawn(self._prepare_rooms(list(self._rooms.values())))
        try:
            async for raw in ws:
                try:
                    self._on_frame(wire.server_frame(raw))
                except Exception:  # a bug here must not end the connection: log it, go on
                    log.exception("could not apply a frame")
        except ConnectionClosed:
            pass
        finally:
            self._connected.clear()
            self._conn = None
            for task in (keepalive, prepare):
                task.cancel()
            for room in self._rooms.values():
                room.ready.clear()
            for future in list(self._by_rid.values()) + list(self._by_cmid.values()):
                if not future.done():
                    future.set_exception(_ConnectionLost())
                    future.exception()  # retrieved: the waiter may be gone
            for rid in self._by_rid:
                self._retire(rid)
            self._by_rid.clear()
            self._by_cmid.clear()
            conn.lost.set()
        will_reconnect = not self._closing and not self._suspended
        self._emit(Disconnected(ws.close_code, ws.close_reason or "", will_reconnect=will_reconnect))
        if will_reconnect:
            self._set_state(ConnectionState.RECONNECTING)
        return loop.time() - opened

    async def _keepalive(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.options.keepalive_s)
            try:
                await self._request({"action": "ping"})
            except (RequestTimeout, _ConnectionLost):
                log.info("no pong: dropping the connection")
                await ws.close(4000, "keepalive timeout")
                return
            except ActionRefused as exc:
                log.info("ping refused: %s", exc)

    def _set_state(self, state: ConnectionState) -> None:
        self._state = state

    async def disconnect(self) -> None:
        """Close the socket but keep everything (rooms, positions, queued sends): :meth:`connect`
        again reconnects, resumes and resends. E.g. while an app is in the background."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is None:
            return
        self._suspended = True
        conn = self._conn
        if conn is not None:
            await conn.ws.close(1000, "client disconnected")
            await conn.lost.wait()
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
        self._set_state(ConnectionState.IDLE)

    def drop_connection(self) -> None:
        """Abort the socket as a network failure would (no close frame); the client reconnects.
        For tests and for apps that know the network changed."""
        if self._conn is not None:
            self._conn.ws.transport.abort()

    async def _wait_connected(self) -> _Conn:
        while True:
            if self._closing:
                raise ClientClosed("the client is closed")
            if self._conn is not None and self._connected.is_set():
                return self._conn
            if self._supervisor is None:
                raise ChatflowClientError("not connected: call connect() first")
            connected = asyncio.ensure_future(self._connected.wait())
            closed = asyncio.ensure_future(self._closed_event.wait())
            try:
                await asyncio.wait({connected, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                connected.cancel()
                closed.cancel()

    # --- closing ---------------------------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued send is acked or refused."""

        async def drained() -> None:
            while True:
                pending = [o.ack for r in self._rooms.values() for o in r.queue]
                if not pending:
                    return
                await asyncio.wait(pending)

        await asyncio.wait_for(drained(), timeout)

    async def close(self) -> None:
        """Close the socket (1000) and stop. Sends not acked yet fail with :class:`ClientClosed`
        (resending their client message ids later is safe). Call :meth:`flush` first to wait
        for them."""
        await self._shutdown(None)
        await self.api.close()

    async def _shutdown(self, error: Exception | None) -> None:
        if self._closing:
            return
        self._closing = True
        self._closed_event.set()
        supervisor, self._supervisor = self._supervisor, None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.ws.close(1000, "client closed")
        if supervisor is not None and supervisor is not asyncio.current_task():
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await supervisor
        closed = ClientClosed("the client closed" if error is None else f"the client closed: {error}")
        for room in self._rooms.values():
            for item in room.queue:
                if not item.ack.done():
                    item.ack.set_exception(closed)
                    item.ack.exception()
            room.queue.clear()
            if room.gap_timer is not None:
                room.gap_timer.cancel()
            for _, timer in room.typing.values():
                timer.cancel()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        self._set_state(ConnectionState.CLOSED)
        self._emit(Closed(error))
        for stream in list(self._streams):
            stream._put(None)
        self._streams.clear()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- requests --------------------------------------------------------------------------------

    def _new_rid(self) -> str:
        return f"{self._rid_prefix}-{next(self._rid_counter)}"

    def _retire(self, rid: str) -> None:
        self._retired[rid] = None
        while len(self._retired) > 1024:
            self._retired.popitem(last=False)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _request(self, frame: dict[str, Any], *, timeout: float | None = None) -> wire.Frame:
        """One attempt: send with a fresh requestId on the current socket and wait for the reply.
        Raises ActionRefused (error frame), RequestTimeout, _ConnectionLost."""
        conn = await self._wait_connected()
        rid = self._new_rid()
        future: asyncio.Future[wire.Frame] = asyncio.get_running_loop().create_future()
        self._by_rid[rid] = future
        try:
            try:
                await conn.ws.send(json.dumps({**frame, "requestId": rid}))
            except ConnectionClosed:
                await conn.lost.wait()
                raise _ConnectionLost() from None
            try:
                reply = await asyncio.wait_for(
                    asyncio.shield(future), timeout or self.options.request_timeout_s
                )
            except TimeoutError:
                raise RequestTimeout(f"no reply to {frame.get('action')}") from None
        finally:
            if self._by_rid.get(rid) is future:
                del self._by_rid[rid]
                self._retire(rid)
        if isinstance(reply, wire.ErrorFrame):
            raise ActionRefused(
                reply.code, reply.message, action=reply.action, request_id=rid, extra=reply.extra
            )
        return reply

    async def _call(self, frame: dict[str, Any]) -> wire.Frame:
        """A request with the client's retry rules: after a lost connection it is sent again on
        the next one; ``rate_limited`` waits ``retryAfterMs``; server-side failures and timeouts
        are retried with backoff, at most ``request_attempts`` times."""
        backoff = Backoff(self.options.reconnect_initial_s, self.options.reconnect_max_s)
        failures = 0
        while True:
            try:
                return await self._request(frame)
            except _ConnectionLost:
                continue
            except RequestTimeout:
                failures += 1
                if failures >= self.options.request_attempts:
                    raise
            except ActionRefused as exc:
                if exc.code == "rate_limited":
                    await asyncio.sleep(_retry_delay(exc, backoff))
                    continue
                if exc.code == "connection_not_found":
                    log.warning("the server does not know this connection (%s): reconnecting", exc.message)
                    self.drop_connection()  # the server forgot this socket: a new one is registered
                elif exc.code not in RETRYABLE_CODES:
                    raise
                failures += 1
                if failures >= self.options.request_attempts:
                    raise
                await asyncio.sleep(_retry_delay(exc, backoff))

    # --- rooms -----------------------------------------------------------------------------------

    def _room(self, room_id: str) -> _Room:
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = _Room(room_id)
            if self._connected.is_set():
                room.ready.set()
        return room

    async def join(self, room_id: str, *, since_seq: int | None = None) -> RoomState:
        """Subscribe to a room's live stream (``joinRoom``: typing indicators; messages of every
        room the user is a member of arrive anyway) and track its position.

        ``since_seq``: the last message the app already has; everything after it is delivered
        (``0``: the whole room). Default: the room's current end (only new messages).
        Membership itself is HTTP (``api.join_room``). Raises :class:`ActionRefused`
        (``not_a_member``, ``room_not_found``).
        """
        room = self._room(room_id)
        if since_seq is not None:
            room.order.start_at(since_seq)
        elif room.order.last_seq is None:
            info = await self.api.room(room_id)
            room.order.start_at(info.last_seq)
            if info.last_read_seq is not None:
                room.read_seq = max(room.read_seq or 0, info.last_read_seq)
        room.subscribed = True
        try:
            await self._call({"action": "joinRoom", "roomId": room_id})
        except ActionRefused:
            room.subscribed = False
            raise
        await self._fill_now(room)
        return self.room(room_id)

    async def leave(self, room_id: str) -> None:
        """Stop the room's live stream on this connection (``leaveRoom``); its messages still
        arrive (membership is HTTP: ``api.leave_room``)."""
        room = self._room(room_id)
        room.subscribed = False
        for user_id in list(room.typing):
            self._typing_ended(room, user_id)
        await self._call({"action": "leaveRoom", "roomId": room_id})

    async def _prepare_rooms(self, rooms: list[_Room]) -> None:
        """After (re)connecting: re-subscribe and resume each room, then let its sends go."""
        limit = asyncio.Semaphore(self.options.resume_concurrency)

        async def prepare(room: _Room) -> None:
            async with limit:
                try:
                    await self._resubscribe(room)
                    await self._fill_now(room)
                except ChatflowClientError as exc:  # closing, or the connection went again
                    log.info("room %s not prepared: %s", room.room_id, exc)
                    return
            if self._connected.is_set():
                room.ready.set()

        await asyncio.gather(*(prepare(r) for r in rooms))

    async def _resubscribe(self, room: _Room) -> None:
        if not room.subscribed:
            return
        try:
            await self._call({"action": "joinRoom", "roomId": room.room_id})
        except ActionRefused as exc:
            room.subscribed = False
            self._emit(ServerError(exc.code, f"room {room.room_id}: {exc.message}"))
        except RequestTimeout as exc:
            self._emit(ServerError("timeout", f"room {room.room_id}: {exc}"))

    async def _resync(self) -> None:
        """The server lost its connection registry: subscribe and resume everything again."""
        await self._prepare_rooms(list(self._rooms.values()))

    # --- ordered delivery ------------------------------------------------------------------------

    def _offer(self, message: Message, source: Source) -> None:
        room = self._room(message.room_id)
        if message.sender_id in room.typing:
            self._typing_ended(room, message.sender_id)
        self._release(room, room.order.offer(message.seq, (message, source)))

    def _release(self, room: _Room, items: list[tuple[Message, Source]]) -> None:
        me = self.api.user.id if self.api.user else None
        for message, source in items:
            own = message.sender_id == me
            self._emit(MessageReceived(message, own=own, source=source))
            if own and (room.read_seq is None or message.seq > room.read_seq):
                # The server moves the sender's read position with every send: mirror it.
                room.read_seq = message.seq
                self._emit(ReadPositionChanged(room.room_id, message.seq))
        if room.order.has_gap:
            if room.gap_timer is None and (room.fill is None or room.fill.done()):
                room.gap_timer = asyncio.get_running_loop().call_later(
                    self.options.gap_wait_s, self._gap_timeout, room
                )
        elif room.gap_timer is not None:
            room.gap_timer.cancel()
            room.gap_timer = None

    def _gap_timeout(self, room: _Room) -> None:
        room.gap_timer = None
        if room.order.has_gap and not self._closing:
            self._start_fill(room)

    def _start_fill(self, room: _Room) -> asyncio.Task[None]:
        if room.fill is not None and not room.fill.done():
            room.refill = True
            return room.fill
        room.fill = self._spawn(self._fill(room))
        return room.fill

    async def _fill_now(self, room: _Room) -> None:
        if room.order.last_seq is None:
            return
        # wait() neither raises the fill's errors nor cancels it when the caller is cancelled.
        await asyncio.wait({self._start_fill(room)})

    async def _fill(self, room: _Room) -> None:
        """``resume`` from the position, page after page, until the server says no more."""
        if room.gap_timer is not None:
            room.gap_timer.cancel()
            room.gap_timer = None
        try:
            while True:
                room.refill = False
                since = room.order.last_seq
                if since is None:
                    return
                try:
                    reply = await self._call(
                        {
                            "action": "resume",
                            "roomId": room.room_id,
                            "sinceSeq": since,
                            "limit": self.options.resume_page,
                        }
                    )
                except ActionRefused as exc:
                    last = exc.extra.get("lastSeq")
                    if exc.code == "seq_beyond_last" and isinstance(last, int):
                        self._release(room, room.order.reset(last))
                        self._emit(PositionReset(room.room_id, last))
                        continue
                    self._emit(ServerError(exc.code, f"resume of room {room.room_id}: {exc.message}"))
                    return
                if not isinstance(reply, wire.ResumedFrame):
                    return
                for message in reply.messages:
                    self._offer(message, "resume")
                progressed = (room.order.last_seq or 0) > since
                if (reply.more and progressed) or room.refill:
                    continue
                return
        except (ClientClosed, RequestTimeout) as exc:
            log.info("resume of room %s stopped: %s", room.room_id, exc)
        finally:
            if room.order.has_gap and not self._closing and room.gap_timer is None:
                room.gap_timer = asyncio.get_running_loop().call_later(
                    self.options.gap_wait_s, self._gap_timeout, room
                )

    # --- sending ---------------------------------------------------------------------------------

    def enqueue(self, room_id: str, body: str, *, client_message_id: str | None = None) -> OutgoingMessage:
        """Queue a message; it goes out after every earlier message of this room was acked.
        ``client_message_id`` defaults to a new random id (reuse an id only to resend the SAME
        message, e.g. one persisted across an app restart)."""
        if self._closing:
            raise ClientClosed("the client is closed")
        room = self._room(room_id)
        item = OutgoingMessage(
            room_id,
            body,
            client_message_id or f"c-{uuid.uuid4().hex}",
            asyncio.get_running_loop().create_future(),
        )
        room.queue.append(item)
        if room.sender is None or room.sender.done():
            room.sender = self._spawn(self._drain(room))
        return item

    async def send(self, room_id: str, body: str, *, client_message_id: str | None = None) -> Ack:
        """Send a message in order and wait for its ack (see :meth:`enqueue`). Raises
        :class:`ActionRefused` (e.g. ``body_too_long``, ``not_a_member``)."""
        return await self.enqueue(room_id, body, client_message_id=client_message_id)

    async def _drain(self, room: _Room) -> None:
        while room.queue and not self._closing:
            item = room.queue[0]
            try:
                ack = await self._transmit(room, item)
            except ClientClosed:
                return  # _shutdown fails what is queued
            except ActionRefused as exc:
                if room.queue and room.queue[0] is item:
                    room.queue.popleft()
                if not item.ack.done():
                    item.ack.set_exception(exc)
                    item.ack.exception()
                continue
            # Out of the queue first: whoever sees the events below sees it stored, not pending.
            if room.queue and room.queue[0] is item:
                room.queue.popleft()
            self._offer(self._own_message(item, ack), "ack")
            if not item.ack.done():
                item.ack.set_result(ack)

    def _own_message(self, item: OutgoingMessage, ack: Ack) -> Message:
        me = self.api.user
        return Message(
            id=ack.message_id,
            room_id=ack.room_id,
            seq=ack.seq,
            sender_id=me.id if me else "",
            sender_handle=me.handle if me else None,
            client_message_id=ack.client_message_id,
            body=item.body,
            created_at=ack.created_at,
        )

    async def _transmit(self, room: _Room, item: OutgoingMessage) -> Ack:
        """Send until acked: the same clientMessageId every time."""
        backoff = Backoff(self.options.reconnect_initial_s, self.options.reconnect_max_s)
        loop = asyncio.get_running_loop()
        while True:
            conn = await self._wait_ready(room)
            rid = self._new_rid()
            future: asyncio.Future[wire.Frame] = loop.create_future()
            self._by_rid[rid] = future
            self._by_cmid[item.client_message_id] = future
            item.attempts += 1
            frame = {
                "action": "sendMessage",
                "roomId": item.room_id,
                "clientMessageId": item.client_message_id,
                "body": item.body,
                "requestId": rid,
            }
            try:
                await conn.ws.send(json.dumps(frame))
                reply = await asyncio.wait_for(asyncio.shield(future), self.options.ack_timeout_s)
            except (ConnectionClosed, _ConnectionLost):
                await conn.lost.wait()
                continue
            except TimeoutError:
                log.info(
                    "no ack for %s after %.0f s: resending",
                    item.client_message_id,
                    self.options.ack_timeout_s,
                )
                continue
            finally:
                if self._by_rid.get(rid) is future:
                    del self._by_rid[rid]
                    self._retire(rid)
                if self._by_cmid.get(item.client_message_id) is future:
                    del self._by_cmid[item.client_message_id]
            if isinstance(reply, wire.AckFrame):
                return reply.ack
            if isinstance(reply, wire.ErrorFrame):
                refused = ActionRefused(
                    reply.code, reply.message, action="sendMessage", request_id=rid, extra=reply.extra
                )
                if reply.code == "rate_limited" or reply.code in RETRYABLE_CODES:
                    await asyncio.sleep(_retry_delay(refused, backoff))
                    continue
                raise refused

    async def _wait_ready(self, room: _Room) -> _Conn:
        while not (room.ready.is_set() and self._conn is not None):
            if self._closing:
                raise ClientClosed("the client is closed")
            ready = asyncio.ensure_future(room.ready.wait())
            closed = asyncio.ensure_future(self._closed_event.wait())
            try:
                await asyncio.wait({ready, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()
                closed.cancel()
        conn = self._conn
        if self._closing or conn is None:
            raise ClientClosed("the client is closed")
        return conn

    # --- other actions ---------------------------------------------------------------------------

    async def edit(self, room_id: str, seq: int, body: str) -> Message:
        """Edit one's own message (``editMessage``); returns the edited message."""
        return _message_of(
            await self._call({"action": "editMessage", "roomId": room_id, "seq": seq, "body": body})
        )

    async def delete(self, room_id: str, seq: int) -> Message:
        """Delete a message (author or admin); returns it with ``body`` None."""
        return _message_of(await self._call({"action": "deleteMessage", "roomId": room_id, "seq": seq}))

    async def mark_read(self, room_id: str, seq: int | None = None) -> int | None:
        """Move the read position forward (default: to the room's position). Returns the
        resulting position (the server never moves it back nor past the room's last message)."""
        room = self._room(room_id)
        target = seq if seq is not None else room.order.last_seq
        if target is None:
            return room.read_seq
        reply = await self._call({"action": "markRead", "roomId": room_id, "seq": target})
        return reply.seq if isinstance(reply, wire.ReadFrame) else room.read_seq

    async def typing(self, room_id: str, is_typing: bool = True) -> bool:
        """Tell the room's subscribers this user is typing (at most one frame per
        ``typing_interval_s``) or stopped. Ephemeral: not sent while disconnected, never retried.
        True when a frame went out."""
        room = self._room(room_id)
        now = asyncio.get_running_loop().time()
        if is_typing and room.typing_active and now - room.typing_sent_at < self.options.typing_interval_s:
            return False
        if not is_typing and not room.typing_active:
            return False
        conn = self._conn
        if conn is None or not self._connected.is_set():
            return False
        with contextlib.suppress(ConnectionClosed):
            await conn.ws.send(json.dumps({"action": "typing", "roomId": room_id, "isTyping": is_typing}))
            room.typing_active, room.typing_sent_at = is_typing, now
            return True
        return False

    async def ping(self) -> int | None:
        """A round trip to the server (``ping``); returns the server's time (epoch ms)."""
        reply = await self._call({"action": "ping"})
        return reply.server_time if isinstance(reply, wire.PongFrame) else None

    async def presence(self, room_id: str) -> list[Presence]:
        """Who is online in a room, from the server (``presence``; servers without presence
        snapshots refuse it with ``unknown_action``). Applied by version like presence frames."""
        online: list[Presence] = []
        frame: dict[str, Any] = {"action": "presence", "roomId": room_id}
        while True:
            reply = await self._call(frame)
            if not isinstance(reply, wire.PresenceSnapshotFrame):
                return online
            online.extend(reply.online)
            if not (reply.more and reply.cursor):
                return online
            frame = {**frame, "cursor": reply.cursor}

    # --- incoming frames -------------------------------------------------------------------------

    def _on_frame(self, frame: wire.Frame) -> None:
        self._apply(frame)
        if frame.request_id is not None and not isinstance(frame, wire.AckFrame):
            future = self._by_rid.get(frame.request_id)
            if future is not None and not future.done():
                future.set_result(frame)
                return
            if isinstance(frame, wire.ErrorFrame) and frame.request_id not in self._retired:
                self._unsolicited_error(frame)

    def _apply(self, frame: wire.Frame) -> None:
        if isinstance(frame, wire.MessageFrame):
            if frame.kind == "message":
                self._offer(frame.message, "live")
            elif frame.kind == "messageEdited":
                self._emit(MessageEdited(frame.message))
            else:
                self._emit(MessageDeleted(frame.message))
        elif isinstance(frame, wire.AckFrame):
            future = self._by_cmid.get(frame.ack.client_message_id)
            if future is None and frame.request_id is not None:
                future = self._by_rid.get(frame.request_id)
            if future is not None and not future.done():
                future.set_result(frame)
        elif isinstance(frame, wire.TypingFrame):
            self._on_typing(frame)
        elif isinstance(frame, wire.PresenceFrame):
            self._apply_presence(frame.presence)
        elif isinstance(frame, wire.PresenceSnapshotFrame):
            self._apply_snapshot(frame)
        elif isinstance(frame, wire.JoinedFrame):
            if frame.presence is not None:
                self._apply_snapshot(frame.presence)
        elif isinstance(frame, wire.ReadFrame):
            room = self._room(frame.room_id)
            if room.read_seq is None or frame.seq > room.read_seq:
                room.read_seq = frame.seq
                self._emit(ReadPositionChanged(frame.room_id, frame.seq))
        elif isinstance(frame, wire.ResyncFrame):
            self._spawn(self._resync())
        elif isinstance(frame, wire.GatewayErrorFrame):
            self._emit(ServerError("gateway_error", frame.message))
        elif isinstance(frame, wire.ErrorFrame) and frame.request_id is None:
            self._unsolicited_error(frame)

    def _unsolicited_error(self, frame: wire.ErrorFrame) -> None:
        if frame.action == "typing" and frame.code == "rate_limited":
            return  # typing is ephemeral: a dropped indicator is the right outcome
        self._emit(ServerError(frame.code, frame.message))

    def _apply_presence(self, presence: Presence) -> None:
        if self._presence.apply(presence):
            applied = self._presence.get(presence.user_id)
            assert applied is not None
            self._emit(PresenceChanged(applied))

    def _apply_snapshot(self, snapshot: wire.PresenceSnapshotFrame) -> None:
        for entry in snapshot.online:
            self._apply_presence(entry)

    def _on_typing(self, frame: wire.TypingFrame) -> None:
        me = self.api.user.id if self.api.user else None
        if frame.user_id == me:
            return
        room = self._room(frame.room_id)
        known = room.typing.pop(frame.user_id, None)
        if known is not None:
            known[1].cancel()
        if not frame.is_typing:
            if known is not None:
                self._emit(TypingChanged(frame.room_id, frame.user_id, known[0], False))
            return
        timer = asyncio.get_running_loop().call_later(
            self.options.typing_ttl_s, self._typing_ended, room, frame.user_id
        )
        room.typing[frame.user_id] = (frame.handle, timer)
        if known is None:
            self._emit(TypingChanged(frame.room_id, frame.user_id, frame.handle, True))

    def _typing_ended(self, room: _Room, user_id: str) -> None:
        known = room.typing.pop(user_id, None)
        if known is not None:
            known[1].cancel()
            self._emit(TypingChanged(room.room_id, user_id, known[0], False))


def _retry_delay(exc: ActionRefused, backoff: Backoff) -> float:
    """``retryAfterMs`` when the server gave it (plus a little jitter), else the backoff."""
    if exc.retry_after_ms is not None:
        return exc.retry_after_ms / 1000 + backoff.next_delay() / 10
    return backoff.next_delay()


def _message_of(frame: wire.Frame) -> Message:
    if isinstance(frame, wire.MessageFrame):
        return frame.message
    raise ChatflowClientError(f"unexpected reply {type(frame).__name__}")
