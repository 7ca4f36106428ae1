"""Events the client emits (``ChatClient.events()`` / ``ChatClient.on(...)``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chatflow_client.models import Message, Presence


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every event."""


@dataclass(frozen=True, slots=True)
class MessageReceived(Event):
    """The next message of a room, in ``seq`` order, exactly once per ``(room_id, seq)``.

    Includes this user's own messages (``own``): those of other devices, and this client's sends
    once acked, each at its place in the room's order. ``source`` says how it arrived: ``live``
    (pushed), ``resume`` (caught up after a gap or a reconnect) or ``ack`` (this client's send).
    A message already deleted when it is caught up arrives with ``message.deleted`` true.
    """

    message: Message
    own: bool
    source: Literal["live", "resume", "ack"]


@dataclass(frozen=True, slots=True)
class MessageEdited(Event):
    message: Message


@dataclass(frozen=True, slots=True)
class MessageDeleted(Event):
    message: Message


@dataclass(frozen=True, slots=True)
class TypingChanged(Event):
    """Someone started or stopped typing in a subscribed room (``is_typing`` false also when an
    indicator expired or their message arrived)."""

    room_id: str
    user_id: str
    handle: str | None
    is_typing: bool


@dataclass(frozen=True, slots=True)
class PresenceChanged(Event):
    """A co-member's presence changed (stale frames, by version, never get here)."""

    presence: Presence


@dataclass(frozen=True, slots=True)
class ReadPositionChanged(Event):
    """This user's read position in a room moved (here or on another device)."""

    room_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class PositionReset(Event):
    """The server says the client's position in a room is beyond the room's last message (a
    restored database, a wrong ``since_seq``): the position is now ``last_seq``."""

    room_id: str
    last_seq: int


@dataclass(frozen=True, slots=True)
class Connected(Event):
    """The WebSocket is open. ``reconnected``: not the first connection of this client; rooms are
    being resumed and unacked sends will be resent."""

    reconnected: bool


@dataclass(frozen=True, slots=True)
class Disconnected(Event):
    """The WebSocket closed; ``will_reconnect`` unless the client is closing or the session ended."""

    code: int | None
    reason: str
    will_reconnect: bool


@dataclass(frozen=True, slots=True)
class ServerError(Event):
    """An error frame that answers no request of this client (or a gateway error frame)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Closed(Event):
    """The client stopped for good: :meth:`ChatClient.close`, or ``error`` (e.g. SessionExpired)."""

    error: Exception | None
