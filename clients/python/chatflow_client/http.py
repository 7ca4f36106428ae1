"""The HTTP API (aiohttp) and the session's tokens.

Tokens: the access token is refreshed BEFORE it expires (whenever one is needed and less than
``token_margin_s`` of its life is left, measured on the local monotonic clock from ``expiresIn``,
so clock skew does not matter), and once more when the API refuses it. Refreshes are serialized:
the server rotates refresh tokens and treats two concurrent uses of one as theft.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from chatflow_client import wire
from chatflow_client.errors import ApiError, SessionExpired
from chatflow_client.models import HistoryPage, Room, TokenPair, User

#: API Gateway's own refusals of a bearer token (403 authorizer deny, 401 no token) and the
#: app's refusals that a NEW access token can cure. Anything else (not_owner, ...) is final.
_TOKEN_REFUSALS = {"http_401", "http_403", "invalid_token", "unauthorized", "token_expired"}


@dataclass(frozen=True, slots=True)
class SessionTokens:
    """What an app persists to restore a session (``HttpApi.use_session``)."""

    access_token: str
    refresh_token: str | None
    #: Wall-clock expiry of the access token (epoch seconds), when known.
    expires_at: float | None


def _jwt_exp(token: str) -> float | None:
    """``exp`` of a JWT, read without verifying (only to plan a refresh; the server verifies)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


class HttpApi:
    """The Chatflow HTTP API (docs/http-api.md) with automatic token refresh.

    ``session``: an aiohttp session to use (not closed by :meth:`close`); by default one is
    created on first use.
    """

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        token_margin_s: float = 60.0,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_margin_s = token_margin_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._own_session = session is None
        self._access: str | None = None
        self._refresh: str | None = None
        self._expires_mono: float | None = None
        self._refresh_lock = asyncio.Lock()
        self._listeners: list[Callable[[SessionTokens | None], None]] = []
        #: The signed-in user (from the token pair or ``me()``).
        self.user: User | None = None

    # --- session ------------------------------------------------------------------------------

    @property
    def signed_in(self) -> bool:
        return self._access is not None

    @property
    def tokens(self) -> SessionTokens | None:
        if self._access is None:
            return None
        expires_at = None
        if self._expires_mono is not None:
            expires_at = time.time() + (self._expires_mono - time.monotonic())
        return SessionTokens(self._access, self._refresh, expires_at)

    def use_session(
        self,
        access_token: str,
        refresh_token: str | None = None,
        *,
        expires_at: float | None = None,
        user: User | None = None,
    ) -> None:
        """Adopt tokens obtained elsewhere (a persisted session, an external issuer)."""
        expires_at = expires_at if expires_at is not None else _jwt_exp(access_token)
        self._access, self._refresh = access_token, refresh_token
        self._expires_mono = None if expires_at is None else time.monotonic() + (expires_at - time.time())
        self.user = user
        self._notify()

    def on_session_change(self, listener: Callable[[SessionTokens | None], None]) -> Callable[[], None]:
        """Call ``listener`` with the new tokens after every sign-in and refresh (None on sign-out)
        -- e.g. to persist them. Returns a function that removes the listener."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _adopt(self, pair: TokenPair) -> None:
        self._access, self._refresh = pair.access_token, pair.refresh_token or self._refresh
        if pair.expires_in is not None:
            self._expires_mono = time.monotonic() + pair.expires_in
        else:
            exp = _jwt_exp(pair.access_token)
            self._expires_mono = None if exp is None else time.monotonic() + (exp - time.time())
        if pair.user is not None:
            self.user = pair.user
        self._notify()

    def _forget(self) -> None:
        self._access = self._refresh = self._expires_mono = None
        self._notify()

    def _notify(self) -> None:
        tokens = self.tokens
        for listener in list(self._listeners):
            listener(tokens)

    async def access_token(self) -> str:
        """A valid access token, refreshed first when it is about to expire."""
        if self._access is None:
            raise SessionExpired("not signed in: call login() or register() first")
        if (
            self._refresh is not None
            and self._expires_mono is not None
            and time.monotonic() > self._expires_mono - self.token_margin_s
        ):
            await self.refresh(stale=self._access)
        assert self._access is not None
        return self._access

    async def refresh(self, *, stale: str | None = None) -> None:
        """Trade the refresh token for a new pair. ``stale``: the access token the caller saw
        refused or expiring; if another task already replaced it, nothing is done."""
        async with self._refresh_lock:
            if stale is not None and self._access != stale:
                return
            if self._refresh is None:
                raise SessionExpired("no refresh token: sign in again")
            try:
                data = await self._call("POST", "/auth/refresh", {"refreshToken": self._refresh})
            except ApiError as exc:
                if 400 <= exc.status < 500 and exc.status != 429:
                    self._forget()
                    raise SessionExpired(f"the session ended ({exc.code}): sign in again") from exc
                raise
            self._adopt(wire.token_pair(data))

    # --- transport ----------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        query: Mapping[str, str | int] | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        params = {k: str(v) for k, v in (query or {}).items()}
        async with self._http().request(
            method, self.base_url + path, json=body, headers=headers, params=params or None
        ) as response:
            text = await response.text()
            try:
                data = json.loads(text) if text else None
            except ValueError:
                data = None
            if response.status >= 400:
                code, message, details = wire.error_body(response.status, data)
                retry_after = response.headers.get("Retry-After")
                if retry_after and retry_after.isdigit() and "retryAfterS" not in details:
                    details = {**details, "retryAfterS": int(retry_after)}
                raise ApiError(response.status, code, message or text[:200], details)
            return data

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        query: Mapping[str, str | int] | None = None,
    ) -> Any:
        """Call any route; bearer-authenticated unless ``auth=False``. A refused token is
        refreshed once and the call repeated."""
        if not auth:
            return await self._call(method, path, body, query=query)
        token = await self.access_token()
        try:
            return await self._call(method, path, body, token=token, query=query)
        except ApiError as exc:
            if exc.status not in (401, 403) or exc.code not in _TOKEN_REFUSALS or self._refresh is None:
                raise
        await self.refresh(stale=token)
        return await self._call(method, path, body, token=await self.access_token(), query=query)

    # --- auth ---------------------------------------------------------------------------------

    async def register(self, handle: str, password: str, *, display_name: str | None = None) -> User:
        body = {"handle": handle, "password": password}
        if display_name is not None:
            body["displayName"] = display_name
        return await self._sign_in("/auth/register", body)

    async def login(self, handle: str, password: str) -> User:
        return await self._sign_in("/auth/login", {"handle": handle, "password": password})

    async def _sign_in(self, path: str, body: dict[str, str]) -> User:
        pair = wire.token_pair(await self._call("POST", path, body))
        self.user = None  # another account may sign in on the same client
        self._adopt(pair)
        return self.user if self.user is not None else await self.me()

    async def logout(self, *, everywhere: bool = False) -> None:
        """Revoke this session's refresh token (``everywhere``: every token of the user)."""
        refresh = self._refresh
        try:
            if refresh is not None:
                await self._call(
                    "POST",
                    "/auth/logout",
                    {"refreshToken": refresh},
                    query={"all": "true"} if everywhere else None,
                )
        finally:
            self._forget()
            self.user = None

    async def change_password(self, current_password: str, new_password: str) -> User:
        """Change this account's password (``POST /auth/password``). Every other session of the
        user ends (its tokens void, its sockets closed -- this client's socket too); this client
        adopts the fresh token pair the server returns and stays signed in. ApiError 401
        ``invalid_credentials`` for a wrong current password, 422 ``weak_password``, 429
        ``too_many_attempts`` (``details["retryAfterS"]``)."""
        data = await self.request(
            "POST", "/auth/password", {"currentPassword": current_password, "newPassword": new_password}
        )
        self._adopt(wire.token_pair(data))
        assert self.user is not None
        return self.user

    async def me(self) -> User:
        self.user = wire.user(await self.request("GET", "/users/me"))
        return self.user

    # --- rooms --------------------------------------------------------------------------------

    async def rooms(self, *, scope: str = "mine") -> list[Room]:
        """Every room of the caller (``mine``, with unread counts) or every discoverable public
        room (``public``), following the pages."""
        out: list[Room] = []
        cursor: str | None = None
        while True:
            query: dict[str, str | int] = {"scope": scope, "limit": 100}
            if cursor:
                query["cursor"] = cursor
            data = await self.request("GET", "/rooms", query=query)
            out.extend(wire.room(r) for r in (data.get("rooms") or []))
            cursor = data.get("nextCursor")
            if not cursor:
                return out

    async def room(self, room_id: str) -> Room:
        return wire.room(await self.request("GET", f"/rooms/{quote(room_id, safe='')}"))

    async def create_room(self, name: str, *, kind: str = "public", topic: str | None = None) -> Room:
        body: dict[str, str] = {"name": name, "kind": kind}
        if topic is not None:
            body["topic"] = topic
        return wire.room(await self.request("POST", "/rooms", body))

    async def join_room(self, room_id: str) -> Room:
        """Become a member of a public room (membership; ``ChatClient.join`` subscribes a
        connection to a room's live stream)."""
        return wire.room(await self.request("POST", f"/rooms/{quote(room_id, safe='')}/join"))

    async def leave_room(self, room_id: str) -> None:
        await self.request("POST", f"/rooms/{quote(room_id, safe='')}/leave")

    async def add_member(
        self, room_id: str, *, user_id: str | None = None, handle: str | None = None
    ) -> dict[str, Any]:
        body = {"userId": user_id} if user_id else {"handle": handle or ""}
        data: dict[str, Any] = await self.request("POST", f"/rooms/{quote(room_id, safe='')}/members", body)
        return data

    async def remove_member(self, room_id: str, user_id: str) -> None:
        await self.request("DELETE", f"/rooms/{quote(room_id, safe='')}/members/{quote(user_id, safe='')}")

    async def open_dm(self, *, user_id: str | None = None, handle: str | None = None) -> Room:
        body = {"userId": user_id} if user_id else {"handle": handle or ""}
        return wire.room(await self.request("POST", "/dms", body))

    async def history(
        self, room_id: str, *, before: int | None = None, after: int | None = None, limit: int | None = None
    ) -> HistoryPage:
        """One page of a room's messages in ascending ``seq``: the newest by default, older than
        ``before`` or newer than ``after`` (the page's ``prev_cursor`` / ``next_cursor``)."""
        query: dict[str, str | int] = {}
        if before is not None:
            query["before"] = before
        if after is not None:
            query["after"] = after
        if limit is not None:
            query["limit"] = limit
        data = await self.request("GET", f"/rooms/{quote(room_id, safe='')}/messages", query=query)
        return wire.history_page(data, room_id)

    async def mark_read(self, room_id: str, seq: int) -> int:
        data = await self.request("POST", f"/rooms/{quote(room_id, safe='')}/read", {"seq": seq})
        value = data.get("lastReadSeq") if isinstance(data, dict) else None
        return int(value) if isinstance(value, int) else seq
