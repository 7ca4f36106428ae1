"""Value objects of in-app notifications (plain dataclasses, no I/O): the consumer's plan and
outcome, stored notifications and unread counters. Shared by :mod:`chatflow.domain.notifications`,
the ports and the Postgres adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

NotificationKind = Literal["mention", "direct_message", "added_to_room"]
DeliveryStatus = Literal["pending", "delivered", "skipped"]


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: UUID
    handle: str


@dataclass(frozen=True, slots=True)
class RoomAudience:
    """A room's kind and its active members (banned/deleted users are left out)."""

    room_id: UUID
    kind: str
    name: str | None
    members: tuple[Recipient, ...]


@dataclass(frozen=True, slots=True)
class CounterBump:
    user_id: UUID
    room_id: UUID
    messages: int
    mentions: int
    seq: int
    at: datetime
    sender_handle: str


@dataclass(frozen=True, slots=True)
class NewNotification:
    user_id: UUID
    kind: NotificationKind
    room_id: UUID
    message_id: UUID | None
    seq: int | None
    actor_id: UUID | None
    actor_handle: str | None
    preview: str


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    user_id: UUID
    kind: NotificationKind
    room_id: UUID
    event_id: UUID
    message_id: UUID | None
    seq: int | None
    actor_id: UUID | None
    actor_handle: str | None
    preview: str
    created_at: datetime
    read_at: datetime | None
    #: Read: marked read here, or the user has read the room past this message (markRead).
    read: bool = False


@dataclass(frozen=True, slots=True)
class RoomUnread:
    room_id: UUID
    unread_messages: int
    unread_mentions: int
    last_seq: int
    last_message_at: datetime | None
    last_sender_handle: str | None


@dataclass(frozen=True, slots=True)
class NotificationsPage:
    rooms: list[RoomUnread]
    items: list[Notification]
    next_before: int | None


@dataclass(frozen=True, slots=True)
class Plan:
    counters: tuple[CounterBump, ...] = ()
    notifications: tuple[NewNotification, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.counters and not self.notifications


@dataclass
class Outcome:
    event_id: UUID
    detail_type: str
    duplicate: bool = False
    counters: int = 0
    created: int = 0
    delivered: int = 0
    skipped: int = 0
    failed: int = 0
    #: Notification previews rewritten or scrubbed (message.edited / message.deleted).
    previews: int = 0
    errors: list[str] = field(default_factory=list)
