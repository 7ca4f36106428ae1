"""What the acceptance suite talks through: public APIs only.

- :class:`World` -- one test's users and rooms, named with the run id (``RUN_ID``), cleaned up at
  the end as far as the API allows (sockets closed, rooms left, sessions logged out everywhere).
- :class:`Actor` -- a registered user: the project's Python client (``chat``: HTTP API + managed
  WebSocket) plus raw sockets (:class:`RawSocket`) for checks of the wire itself (error frames the
  client would retry or hide, close codes, limits).
- :class:`Http` -- raw HTTP answers (status, headers, body) for the documented error shapes.
- :class:`Limits` -- the documented limits, overridable per target (``TARGET_<SETTING>``).

Nothing here imports server code: what a tester can do against a deployed stage, the suite does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chatflow_client import ApiError, ChatClient, ClientOptions, EventStream, HttpApi
from tests.e2e.target import Target

#: This run's id: in every handle and room name the suite creates (find or purge them on a stage).
RUN_ID = os.environ.get("ACCEPTANCE_RUN_ID") or secrets.token_hex(3)
PASSWORD = "acceptance-horse-battery-staple"
_NAMES = itertools.count(1)
TIMEOUT_S = 20.0
T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]], *, limit_s: float = 120.0) -> T:
    """Run one async scenario; a hung one fails instead of hanging CI."""

    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), limit_s)

    return asyncio.run(bounded())


@dataclass(frozen=True)
class Limits:
    """The documented limits (docs/protocol.md "Limits", README "Configuration"); a stage that
    changed one sets ``TARGET_<NAME>`` (e.g. ``TARGET_RATE_MESSAGES_PER_10S=40``)."""

    max_message_chars: int = 4000
    max_connections_per_user: int = 5
    rate_messages_per_10s: int = 20
    rate_typing_per_10s: int = 10
    rate_requests_per_10s: int = 100
    rate_connects_per_minute: int = 30
    history_page_max: int = 100
    max_request_body_bytes: int = 65536
    #: Failed sign-ins per (handle, source address) before the back-off starts (docs/auth.md).
    login_free_failures: int = 5
    frame_bytes: int = 32 * 1024
    message_bytes: int = 128 * 1024

    @classmethod
    def from_env(cls, target: Target) -> Limits:
        values: dict[str, int] = {}
        for name in cls.__dataclass_fields__:
            raw = os.environ.get(f"TARGET_{name.upper()}")
            if raw:
                values[name] = int(raw)
        values.setdefault("max_connections_per_user", target.max_connections)
        return cls(**values)


def ws_url_with_token(target: Target, token: str | None) -> str:
    if token is None:
        return target.ws_url
    return f"{target.ws_url}{'&' if '?' in target.ws_url else '?'}token={token}"


# --- raw HTTP ---------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text) if self.text else None

    @property
    def error_code(self) -> str | None:
        body = self.json
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
            return code if isinstance(code, str) else None
        return None

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.text[:300]!r})"


class Http:
    """Raw requests to the HTTP API (one aiohttp session; closed by :class:`World`)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        return self._session

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Answer:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        async with self._http().request(
            method, self.base_url + path, json=json_body, data=data, headers=hdrs, params=query
        ) as response:
            return Answer(response.status, dict(response.headers), await response.text())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# --- raw WebSocket ----------------------------------------------------------------------------------


class RawSocket:
    """One WebSocket as a plain list of received frames (JSON objects, or the raw text when not
    JSON), read in the background. ``request`` sends a frame with a fresh ``requestId`` and waits
    for the frame echoing it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Any] = []
        self._seen = 0
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        self._rid = 0
        self._consumed: set[int] = set()

    @classmethod
    async def open(cls, target: Target, token: str | None, **kwargs: Any) -> RawSocket:
        ws = await connect(ws_url_with_token(target, token), open_timeout=TIMEOUT_S, **kwargs)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                try:
                    frame: Any = json.loads(raw)
                except ValueError:
                    frame = raw
                async with self._changed:
                    self.frames.append(frame)
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            async with self._changed:
                self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._reader.done()

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    async def send(self, frame: Mapping[str, Any] | str | bytes) -> None:
        await self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    def next_request_id(self) -> str:
        self._rid += 1
        return f"acc-{self._rid}"

    async def wait_for(
        self, predicate: Callable[[Any], bool], *, timeout: float = TIMEOUT_S, what: str = "a frame"
    ) -> Any:
        """The first frame not taken yet (by an earlier ``wait_for``) matching ``predicate``, waiting
        for it if needed; it is taken."""
        deadline = time.monotonic() + timeout
        index = 0
        async with self._changed:
            while True:
                while index < len(self.frames):
                    frame = self.frames[index]
                    index += 1
                    if index - 1 not in self._consumed and predicate(frame):
                        self._consumed.add(index - 1)
                        return frame
                if self._reader.done():
                    raise AssertionError(
                        f"socket closed ({self.close_code}) before {what}: {self.frames[-5:]}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout} s; last frames {self.frames[-5:]}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)

    async def request(self, frame: Mapping[str, Any], *, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """Send ``frame`` with a new ``requestId``; the reply (or error frame) that echoes it."""
        rid = self.next_request_id()
        await self.send({**frame, "requestId": rid})
        reply: dict[str, Any] = await self.wait_for(
            lambda f: isinstance(f, dict) and f.get("requestId") == rid,
            timeout=timeout,
            what=f"reply to {frame.get('action')} {rid}",
        )
        return reply

    async def next_of_type(
        self, kind: str, *, timeout: float = TIMEOUT_S, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        frame: dict[str, Any] = await self.wait_for(
            lambda f: isinstance(f, dict) and f.get("type") == kind and (where is None or where(f)),
            timeout=timeout,
            what=f"a {kind!r} frame",
        )
        return frame

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if isinstance(f, dict) and f.get("type") == kind]

    async def wait_closed(self, timeout: float = TIMEOUT_S) -> int | None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        assert self._reader.done(), f"socket still open after {timeout} s"
        return self.close_code

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader


async def handshake_status(target: Target, token: str | None) -> int:
    """The HTTP status of a WebSocket handshake (101 when it opened)."""
    try:
        async with connect(ws_url_with_token(target, token), open_timeout=TIMEOUT_S):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


# --- actors and the world ---------------------------------------------------------------------------


@dataclass
class Actor:
    """A user registered by this run: ``chat`` is the Python client (signed in, NOT connected
    until :meth:`connect`); raw sockets come from :meth:`socket`."""

    world: World
    chat: ChatClient
    handle: str
    sockets: list[RawSocket] = field(default_factory=list)
    events: EventStream | None = None

    @property
    def id(self) -> str:
        assert self.chat.user is not None
        return self.chat.user.id

    @property
    def api(self) -> HttpApi:
        return self.chat.api

    async def token(self) -> str:
        return await self.chat.api.access_token()

    async def connect(self) -> EventStream:
        """Connect the managed client (events subscribed first: nothing is missed)."""
        self.events = self.chat.events()
        await self.chat.connect()
        return self.events

    async def socket(self) -> RawSocket:
        sock = await RawSocket.open(self.world.target, await self.token())
        self.sockets.append(sock)
        return sock

    async def close_sockets(self) -> None:
        for sock in self.sockets:
            await sock.close()
        self.sockets.clear()


class World:
    """One test's users and rooms (names carry ``RUN_ID``); ``async with`` cleans up."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.limits = Limits.from_env(target)
        self.http = Http(target.http_url)
        self.actors: list[Actor] = []
        self._admin: HttpApi | None = None

    async def __aenter__(self) -> World:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cleanup()

    def name(self, label: str) -> str:
        """A unique handle / room name of this run: ``a<run id><n><random><label>``, at most 32
        chars. ``n`` counts this process's names: a random part alone collided (4 hex digits
        for a few hundred "alice"s a run: 409 handle_taken); the random part keeps parallel
        processes of one run apart."""
        return f"a{RUN_ID}{next(_NAMES):x}{secrets.token_hex(2)}{label}"[:32]

    async def user(self, label: str = "u", options: ClientOptions | None = None) -> Actor:
        chat = ChatClient(self.target.http_url, self.target.ws_url, options=options)
        handle = self.name(label)
        await chat.register(handle, PASSWORD)
        actor = Actor(self, chat, handle)
        self.actors.append(actor)
        return actor

    async def connected(self, label: str = "u", options: ClientOptions | None = None) -> Actor:
        actor = await self.user(label, options)
        await actor.connect()
        return actor

    async def device(self, of: Actor) -> Actor:
        """The same user signed in again (another device, its own refresh family)."""
        chat = ChatClient(self.target.http_url, self.target.ws_url)
        await chat.login(of.handle, PASSWORD)
        actor = Actor(self, chat, of.handle)
        self.actors.append(actor)
        return actor

    async def room(self, owner: Actor, *members: Actor, kind: str = "public") -> str:
        room = await owner.api.create_room(self.name("room"), kind=kind)
        for member in members:
            if kind == "public":
                await member.api.join_room(room.id)
            else:
                await owner.api.add_member(room.id, user_id=member.id)
        return room.id

    async def admin(self) -> HttpApi | None:
        """The HTTP API as an administrator (``TARGET_ADMIN_TOKEN``, or locally a promoted user of
        this run); None when the target offers no way to one."""
        if self._admin is None:
            self._admin = await self.target.admin(PASSWORD)
        return self._admin

    async def cleanup(self) -> None:
        """What the API lets a user undo: sockets closed, rooms left, every session revoked."""
        for actor in self.actors:
            await actor.close_sockets()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(actor.chat.disconnect(), 10)
        for actor in self.actors:
            # banned, deleted, signed out by its other device: nothing left to undo
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(_leave_and_sign_out(actor.api), 20)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(actor.chat.close(), 10)
        if self._admin is not None:
            await self._admin.close()
        await self.http.close()


async def _leave_and_sign_out(api: HttpApi) -> None:
    if not api.signed_in:
        return
    for room in await api.rooms():
        with contextlib.suppress(ApiError):
            await api.leave_room(room.id)
    await api.logout(everywhere=True)


@asynccontextmanager
async def world(target: Target) -> AsyncIterator[World]:
    async with World(target) as w:
        yield w


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = TIMEOUT_S, interval: float = 0.2, what: str
) -> T:
    """Poll ``check`` until it returns something truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(interval)
