"""In-app notifications for members who are offline when something happens in their rooms.

Consumer side (``functions/notifications``, an EventBridge target for message.created and
member.joined):

* message.created: every active member except the sender who is OFFLINE (no live WebSocket;
  online members saw the message live) gets its room's unread counter bumped; a mentioned
  offline member also gets its mention counter bumped and a ``mention`` notification; in a DM
  the offline peer gets a ``direct_message`` notification.
* member.joined: a user added by SOMEONE ELSE who is offline gets ``added_to_room``.

The counters, notifications and the consumer's processed-event record are written in one
transaction (:class:`NotificationRepository.apply`), so a redelivered or replayed event changes
nothing. Notifications are then handed to the delivery channel (SNS by default); a failed
hand-off is retried on the next delivery of the same event (EventBridge retry, redrive), and
never re-counts.

Reader side (HTTP): :func:`list_for_user`, :func:`mark_read`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

from chatflow.errors import InvalidInput
from chatflow.events.schemas import DomainEvent, MemberJoined, MessageCreated

CONSUMER = "notifications"
PREVIEW_CHARS = 140

NotificationKind = Literal["mention", "direct_message", "added_to_room"]
DeliveryStatus = Literal["pending", "delivered", "skipped"]


# --- values -------------------------------------------------------------------------------


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

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "read": self.read or self.read_at is not None,
            "kind": self.kind,
            "roomId": str(self.room_id),
            "messageId": str(self.message_id) if self.message_id else None,
            "seq": self.seq,
            "actorId": str(self.actor_id) if self.actor_id else None,
            "actorHandle": self.actor_handle,
            "preview": self.preview,
            "createdAt": self.created_at.isoformat(),
            "readAt": self.read_at.isoformat() if self.read_at else None,
        }


@dataclass(frozen=True, slots=True)
class RoomUnread:
    room_id: UUID
    unread_messages: int
    unread_mentions: int
    last_seq: int
    last_message_at: datetime | None
    last_sender_handle: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "roomId": str(self.room_id),
            "unreadMessages": self.unread_messages,
            "unreadMentions": self.unread_mentions,
            "lastSeq": self.last_seq,
            "lastMessageAt": self.last_message_at.isoformat() if self.last_message_at else None,
            "lastSenderHandle": self.last_sender_handle,
        }


@dataclass(frozen=True, slots=True)
class NotificationsPage:
    rooms: list[RoomUnread]
    items: list[Notification]
    next_before: int | None

    def to_dict(self) -> dict[str, object]:
        return {
            "rooms": [r.to_dict() for r in self.rooms],
            "totalUnreadMessages": sum(r.unread_messages for r in self.rooms),
            "totalUnreadMentions": sum(r.unread_mentions for r in self.rooms),
            "items": [n.to_dict() for n in self.items],
            "nextBefore": self.next_before,
        }


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
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "eventId": str(self.event_id),
            "detailType": self.detail_type,
            "duplicate": self.duplicate,
            "countersBumped": self.counters,
            "notificationsCreated": self.created,
            "delivered": self.delivered,
            "skipped": self.skipped,
            "failed": self.failed,
        }


# --- ports --------------------------------------------------------------------------------


class NotificationRepository(Protocol):
    def audience(self, room_id: UUID) -> RoomAudience | None: ...
    def handle_of(self, user_id: UUID) -> str | None: ...

    def apply(self, consumer: str, event: DomainEvent, plan: Plan) -> list[int] | None:
        """In ONE transaction: record (consumer, event_id) as processed and apply ``plan``.

        Returns the ids of the notifications created, or None when the event was already
        processed (nothing is changed then)."""
        ...

    def deliver_pending(
        self, event_id: UUID, deliver: Callable[[Notification], DeliveryStatus]
    ) -> list[tuple[int, DeliveryStatus | Exception]]:
        """Lock this event's notifications not yet handed to the channel (SKIP LOCKED), call
        ``deliver`` for each and record the result; an exception leaves the row pending."""
        ...

    def list_for_user(
        self, user_id: UUID, *, unread_only: bool, before: int | None, limit: int
    ) -> tuple[list[RoomUnread], list[Notification]]: ...

    def mark_read(
        self, user_id: UUID, *, room_ids: Sequence[UUID], ids: Sequence[int], everything: bool
    ) -> tuple[int, int]:
        """Clear counters of ``room_ids`` (with their notifications), notifications ``ids``,
        or everything; returns (rooms cleared, notifications marked read)."""
        ...


PresenceLookup = Callable[[Iterable[UUID]], set[UUID]]


class Channel(Protocol):
    @property
    def name(self) -> str: ...
    def deliver(self, user_id: UUID, payload: dict[str, object]) -> bool: ...


# --- planning (pure) ------------------------------------------------------------------------


def preview(body: str) -> str:
    text = " ".join(body.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def plan_message(event: MessageCreated, audience: RoomAudience, online: set[UUID]) -> Plan:
    mentioned = {h.lower() for h in event.mentions}
    counters: list[CounterBump] = []
    items: list[NewNotification] = []
    for member in audience.members:
        if member.user_id == event.sender_id or member.user_id in online:
            continue
        is_mention = member.handle.lower() in mentioned
        counters.append(
            CounterBump(
                member.user_id,
                event.room_id,
                1,
                1 if is_mention else 0,
                event.seq,
                event.created_at,
                event.sender_handle,
            )
        )
        kind: NotificationKind | None = (
            "direct_message" if audience.kind == "dm" else "mention" if is_mention else None
        )
        if kind is not None:
            items.append(
                NewNotification(
                    member.user_id,
                    kind,
                    event.room_id,
                    event.message_id,
                    event.seq,
                    event.sender_id,
                    event.sender_handle,
                    preview(event.body),
                )
            )
    return Plan(tuple(counters), tuple(items))


def plan_member_joined(
    event: MemberJoined, audience: RoomAudience | None, online: set[UUID], actor_handle: str | None
) -> Plan:
    if event.added_by is None or event.added_by == event.user_id or event.user_id in online:
        return Plan()
    if audience is None or event.user_id not in {m.user_id for m in audience.members}:
        return Plan()  # left again (or banned) before we got here: nothing to tell
    who = actor_handle or "someone"
    text = (
        f"{who} started a direct message with you"
        if audience.kind == "dm"
        else f"{who} added you to {audience.name}"
    )
    return Plan(
        notifications=(
            NewNotification(
                event.user_id, "added_to_room", event.room_id, None, None, event.added_by, actor_handle, text
            ),
        )
    )


# --- consumer -----------------------------------------------------------------------------


def handle_event(
    event: DomainEvent, repo: NotificationRepository, online_user_ids: PresenceLookup, channel: Channel
) -> Outcome:
    """Process one delivery of ``event``; idempotent. Raises when the channel hand-off failed
    (so the delivery is retried: the retry only re-attempts the hand-off)."""
    outcome = Outcome(event.event_id, event.detail_type)
    plan = Plan()
    if isinstance(event, MessageCreated):
        audience = repo.audience(event.room_id)
        if audience is not None:
            others = [m.user_id for m in audience.members if m.user_id != event.sender_id]
            plan = plan_message(event, audience, online_user_ids(others) if others else set())
    elif isinstance(event, MemberJoined):
        audience = repo.audience(event.room_id)
        online = online_user_ids([event.user_id])
        actor = repo.handle_of(event.added_by) if event.added_by else None
        plan = plan_member_joined(event, audience, online, actor)
    created = repo.apply(CONSUMER, event, plan)
    if created is None:
        outcome.duplicate = True
    else:
        outcome.counters = len(plan.counters)
        outcome.created = len(created)
    # Also on a duplicate: a previous delivery may have stored notifications and then failed
    # to hand them to the channel; those are still pending and are retried here.
    for _, status in repo.deliver_pending(event.event_id, lambda n: _deliver(channel, n)):
        if isinstance(status, Exception):
            outcome.failed += 1
            outcome.errors.append(f"{type(status).__name__}: {status}")
        elif status == "delivered":
            outcome.delivered += 1
        else:
            outcome.skipped += 1
    if outcome.failed:
        raise DeliveryFailed(outcome)
    return outcome


class DeliveryFailed(RuntimeError):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(
            f"{outcome.failed} notification(s) of event {outcome.event_id} not delivered via channel: "
            + "; ".join(outcome.errors[:3])
        )
        self.outcome = outcome


def _deliver(channel: Channel, n: Notification) -> DeliveryStatus:
    payload: dict[str, object] = {"type": "notification", "userId": str(n.user_id), **n.to_dict()}
    return "delivered" if channel.deliver(n.user_id, payload) else "skipped"


# --- reader side (HTTP) ---------------------------------------------------------------------

MAX_PAGE = 100
#: Notification ids are Postgres bigints; anything larger names no notification.
MAX_ID = 2**63 - 1


def list_for_user(
    repo: NotificationRepository, user_id: UUID, *, unread_only: bool = False, before: int | None, limit: int
) -> NotificationsPage:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    if before is not None and not 1 <= before <= MAX_ID:
        raise InvalidInput("before must be a notification id (a positive 64-bit integer)")
    rooms, items = repo.list_for_user(user_id, unread_only=unread_only, before=before, limit=limit + 1)
    next_before = items[limit - 1].id if len(items) > limit else None
    return NotificationsPage(rooms, items[:limit], next_before)


def mark_read(
    repo: NotificationRepository,
    user_id: UUID,
    *,
    room_ids: Sequence[UUID] = (),
    ids: Sequence[int] = (),
    everything: bool = False,
) -> dict[str, int]:
    if not everything and not room_ids and not ids:
        raise InvalidInput("give roomIds, ids or all=true")
    if len(room_ids) > MAX_PAGE or len(ids) > MAX_PAGE:
        raise InvalidInput(f"at most {MAX_PAGE} roomIds and {MAX_PAGE} ids per call")
    if any(not 1 <= i <= MAX_ID for i in ids):
        raise InvalidInput("ids must be notification ids (positive 64-bit integers)")
    rooms, items = repo.mark_read(user_id, room_ids=room_ids, ids=ids, everything=everything)
    return {"roomsCleared": rooms, "notificationsRead": items}
