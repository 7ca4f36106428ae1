"""Value objects of rooms, memberships and messages (plain dataclasses, no I/O).

Shared by the domain (:mod:`chatflow.domain.rooms`, :mod:`chatflow.domain.messages`), the ports
that return them and the Postgres adapters that build them from rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Literal, TypeVar
from uuid import UUID

from chatflow.domain.user_models import Status

RoomKind = Literal["public", "private", "dm"]
ChannelKind = Literal["public", "private"]
MemberRole = Literal["owner", "member"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Room:
    """A room's metadata: what the room cache stores (no counters, they change on every send)."""

    id: UUID
    kind: RoomKind
    name: str | None
    topic: str
    created_by: UUID
    created_at: datetime
    #: DMs only: the two members, ordered (``dm_user_low < dm_user_high``).
    dm_user_low: UUID | None = None
    dm_user_high: UUID | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    room_id: UUID
    user_id: UUID
    role: MemberRole
    last_read_seq: int
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class PeerUser:
    """The other participant of a DM, as listed with the room."""

    id: UUID
    handle: str
    display_name: str


@dataclass(frozen=True, slots=True)
class RoomView:
    """A room as one caller sees it: metadata, counters and the caller's membership (if any)."""

    room: Room
    last_seq: int
    member_count: int
    membership: Membership | None
    peer: PeerUser | None = None

    @property
    def unread(self) -> int:
        if self.membership is None:
            return 0
        return max(0, self.last_seq - self.membership.last_read_seq)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One keyset page; ``next_cursor`` is opaque and None on the last page."""

    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class UserRef:
    """Just enough about a user to authorize membership changes and DMs."""

    id: UUID
    handle: str
    status: Status


@dataclass(frozen=True, slots=True)
class Message:
    room_id: UUID
    seq: int
    id: UUID
    sender_id: UUID
    sender_handle: str
    client_message_id: str
    #: The text; "" once deleted (the store keeps NULL: migration 0061), and readers show null
    #: for a deleted message (chatflow.wire).
    body: str
    created_at: datetime
    edited_at: datetime | None = None
    deleted_at: datetime | None = None
    #: Handles mentioned (resolved against room members at send time; not stored).
    mentions: tuple[str, ...] = field(default=())

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Messages in ascending seq order plus keyset cursors.

    ``prev_cursor``: pass as ``before=`` to get the older page (None: nothing older).
    ``next_cursor``: pass as ``after=`` to get the newer page (None: nothing newer right now).
    """

    messages: list[Message]
    last_seq: int
    prev_cursor: int | None
    next_cursor: int | None
