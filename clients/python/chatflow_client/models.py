"""Typed values the client hands out (built from the wire by :mod:`chatflow_client.wire`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal


@dataclass(frozen=True, slots=True)
class User:
    id: str
    handle: str
    display_name: str | None = None
    role: str = "user"
    status: str = "active"


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message (same shape over HTTP and WebSocket). ``body`` is None once deleted."""

    id: str
    room_id: str
    seq: int
    sender_id: str
    sender_handle: str | None
    client_message_id: str | None
    body: str | None
    created_at: datetime | None
    edited_at: datetime | None = None
    deleted_at: datetime | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None or self.body is None


@dataclass(frozen=True, slots=True)
class Ack:
    """The server stored a send. ``duplicate``: this ``client_message_id`` had been stored before
    (a resend after a lost ack); ``seq`` is then the original one."""

    client_message_id: str
    room_id: str
    seq: int
    message_id: str
    created_at: datetime | None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Peer:
    id: str
    handle: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class Room:
    """A room as the caller sees it (``GET /rooms``, ``POST /rooms``, ...)."""

    id: str
    kind: str
    name: str | None
    topic: str | None = None
    last_seq: int = 0
    member_count: int = 0
    is_member: bool = False
    role: str | None = None
    last_read_seq: int | None = None
    unread: int = 0
    peer: Peer | None = None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of ``GET /rooms/{id}/messages`` (ascending ``seq``). Pass ``prev_cursor`` as
    ``before=`` for older messages (None: none), ``next_cursor`` as ``after=`` for newer ones."""

    room_id: str
    messages: list[Message]
    last_seq: int
    prev_cursor: int | None
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str | None
    expires_in: float | None
    user: User | None


PresenceStatus = Literal["online", "offline"]


@dataclass(frozen=True, slots=True)
class Presence:
    """A user's presence as last applied (``version`` strictly increases per user)."""

    user_id: str
    status: PresenceStatus
    version: int | None
    handle: str | None = None


class ConnectionState(StrEnum):
    IDLE = "idle"  # never connected
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class RoomState:
    """A snapshot of what the client knows about one room (``ChatClient.room(room_id)``).

    ``last_seq`` is the position: every message up to it was delivered, in order, exactly once
    (None until the client learns where the room is). ``unread`` follows the server's definition,
    ``last_seq - read_seq``.
    """

    room_id: str
    last_seq: int | None
    read_seq: int | None
    #: This client asked for the room's live stream (``join``); renewed after every reconnect.
    subscribed: bool
    #: user id -> handle of those typing now (subscribed rooms).
    typing: dict[str, str | None]
    #: This client's sends not acked yet, oldest first (their client message ids).
    pending_sends: tuple[str, ...]
    #: Messages received above a gap, waiting for the missing ones.
    waiting: int

    @property
    def unread(self) -> int:
        if self.last_seq is None:
            return 0
        return max(0, self.last_seq - (self.read_seq or 0))
