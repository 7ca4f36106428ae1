"""Real clients for the end-to-end suite: the HTTP API over aiohttp, the WebSocket API over
``websockets``. Nothing here knows whether the target is the local gateway, LocalStack or AWS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

PASSWORD = "correct-horse-battery-staple"
Frame = dict[str, Any]


class HttpError(AssertionError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class User:
    handle: str
    user_id: str
    access_token: str


class Api:
    """The HTTP API as a client sees it."""

    def __init__(self, http_url: str, session: aiohttp.ClientSession) -> None:
        self.http_url = http_url.rstrip("/")
        self.session = session

    async def call(self, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.http_url + path, json=body, headers=headers) as response:
            text = await response.text()
            data = json.loads(text) if text else None
            if response.status >= 400:
                raise HttpError(response.status, data)
            return data

    async def new_user(self, prefix: str = "u") -> User:
        handle = f"{prefix}{secrets.token_hex(4)}"
        pair = await self.call("POST", "/auth/register", body={"handle": handle, "password": PASSWORD})
        token = pair["accessToken"]
        me = await self.call("GET", "/users/me", token)
        return User(handle, str(me["id"]), token)

    async def login(self, handle: str) -> str:
        pair = await self.call("POST", "/auth/login", body={"handle": handle, "password": PASSWORD})
        return str(pair["accessToken"])

    async def public_room(self, owner: User, *members: User) -> str:
        room = await self.call(
            "POST", "/rooms", owner.access_token, {"kind": "public", "name": f"e2e-{secrets.token_hex(3)}"}
        )
        room_id = str(room["id"])
        for member in members:
            await self.call("POST", f"/rooms/{room_id}/join", member.access_token)
        return room_id


@dataclass
class Socket:
    """One WebSocket connection; a reader task keeps every frame received, in order."""

    ws: ClientConnection
    frames: list[Frame] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, ws_url: str, token: str, *, subprotocols: Sequence[str] = ()) -> Socket:
        """``subprotocols``: offered in Sec-WebSocket-Protocol, as a browser can
        (``new WebSocket(url, ["chatflow.v1", "bearer." + token])``)."""
        sep = "&" if "?" in ws_url else "?"
        offered = [Subprotocol(p) for p in subprotocols] or None
        sock = cls(await connect(f"{ws_url}{sep}token={token}", open_timeout=30, subprotocols=offered))
        sock._reader = asyncio.create_task(sock._read())
        return sock

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                self.frames.append(json.loads(raw))
                self._arrived.set()
        self._arrived.set()

    @property
    def closed(self) -> bool:
        return self._reader is not None and self._reader.done()

    async def send(self, frame: Frame) -> None:
        await self.ws.send(json.dumps(frame))

    async def wait_for(self, match: Callable[[Frame], bool], timeout: float = 20.0) -> Frame:
        async def find() -> Frame:
            seen = 0
            while True:
                for frame in self.frames[seen:]:
                    if match(frame):
                        return frame
                seen = len(self.frames)
                if self.closed:
                    raise AssertionError(f"socket closed before the frame arrived; got {self.frames}")
                self._arrived.clear()
                await self._arrived.wait()

        return await asyncio.wait_for(find(), timeout)

    async def request(self, frame: Frame, timeout: float = 20.0) -> Frame:
        """Send a frame with a fresh requestId and wait for the reply carrying it."""
        request_id = uuid.uuid4().hex[:16]
        await self.send({**frame, "requestId": request_id})
        return await self.wait_for(lambda f: f.get("requestId") == request_id, timeout)

    async def send_message(self, room_id: str, body: str, client_message_id: str | None = None) -> Frame:
        cmid = client_message_id or f"c-{uuid.uuid4().hex[:12]}"
        ack = await self.request(
            {"action": "sendMessage", "roomId": room_id, "clientMessageId": cmid, "body": body}
        )
        assert ack["type"] == "ack", ack
        return ack

    async def sync(self) -> None:
        """A ping round trip: frames sent to this socket before it are in ``frames`` after it."""
        pong = await self.request({"action": "ping"})
        assert pong["type"] == "pong", pong

    def messages(self, room_id: str | None = None) -> list[Frame]:
        return [
            f["message"]
            for f in self.frames
            if f.get("type") == "message" and (room_id is None or f["message"]["roomId"] == room_id)
        ]

    async def wait_closed(self, timeout: float = 20.0) -> int | None:
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 10)

    def vanish(self) -> None:
        """Drop the TCP connection without a close frame (a phone losing its network)."""
        self.ws.transport.abort()
