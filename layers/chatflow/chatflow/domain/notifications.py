"""In-app notifications for members who are offline when something happens in their rooms.

Consumer side (``functions/notifications``, an EventBridge target for message.created,
message.edited, message.deleted and member.joined):

* message.created: every active member except the sender who is OFFLINE (no live WebSocket;
  online members saw the message live) gets its room's unread counter bumped; a mentioned
  offline member also gets its mention counter bumped and a ``mention`` notification; in a DM
  the offline peer gets a ``direct_message`` notification.
* member.joined: a user added by SOMEONE ELSE who is offline gets ``added_to_room``.
* message.edited / message.deleted: the previews of that message's notifications follow its
  current text -- rewritten on an edit, emptied on a delete (deleted means deleted). A
  message.created delivered after the edit or delete uses the current text too.

The counters, notifications and the consumer's processed-event record are written in one
transaction (:class:`NotificationRepository.apply`), so a redelivered or replayed event changes
nothing. Notifications are then handed to the delivery channel (SNS by default); a failed
hand-off is retried on the next delivery of the same event (EventBridge retry, redrive), and
never re-counts.

Reader side (HTTP): :meth:`NotificationService.list_for_user`, :meth:`NotificationService.mark_read`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING
from uuid import UUID

from chatflow.domain.notification_models import (
    CounterBump,
    DeliveryStatus,
    NewNotification,
    Notification,
    NotificationKind,
    NotificationsPage,
    Outcome,
    Plan,
    RoomAudience,
)
from chatflow.errors import InvalidInput
from chatflow.events.schemas import (
    DomainEvent,
    MemberJoined,
    MessageCreated,
    MessageDeleted,
    MessageEdited,
)

if TYPE_CHECKING:
    from chatflow.domain.ports import NotificationChannel, NotificationRepository, PresenceLookup

CONSUMER = "notifications"
PREVIEW_CHARS = 140


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


# --- the service ----------------------------------------------------------------------------

MAX_PAGE = 100
#: Notification ids are Postgres bigints; anything larger names no notification.
MAX_ID = 2**63 - 1


class DeliveryFailed(RuntimeError):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(
            f"{outcome.failed} notification(s) of event {outcome.event_id} not delivered via channel: "
            + "; ".join(outcome.errors[:3])
        )
        self.outcome = outcome


class NotificationService:
    """Consumer side (:meth:`handle_event`) and reader side (:meth:`list_for_user`,
    :meth:`mark_read`) of in-app notifications, over its ports."""

    def __init__(
        self, repo: NotificationRepository, presence: PresenceLookup, channel: NotificationChannel
    ) -> None:
        self._repo = repo
        self._presence = presence
        self._channel = channel

    def handle_event(self, event: DomainEvent) -> Outcome:
        """Process one delivery of ``event``; idempotent. Raises DeliveryFailed when the channel
        hand-off failed (so the delivery is retried: the retry only re-attempts the hand-off)."""
        repo = self._repo
        outcome = Outcome(event.event_id, event.detail_type)
        plan = Plan()
        if isinstance(event, MessageCreated):
            audience = repo.audience(event.room_id)
            if audience is not None:
                others = [m.user_id for m in audience.members if m.user_id != event.sender_id]
                online = self._presence.online_user_ids(others) if others else set()
                plan = plan_message(event, audience, online)
                if plan.notifications:
                    plan = self._with_current_text(event, plan)
        elif isinstance(event, MessageEdited | MessageDeleted):
            # Previews follow the message as it is NOW, whatever order events arrive in: a
            # delete scrubs them, an edit rewrites them (unless a delete came first).
            current = repo.current_body(event.message_id)
            if isinstance(event, MessageDeleted):
                text = ""
            else:
                text = preview(event.body if current is None else current)
            outcome.previews = repo.set_previews(event.message_id, text)
        elif isinstance(event, MemberJoined):
            audience = repo.audience(event.room_id)
            online = self._presence.online_user_ids([event.user_id])
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
        for _, status in repo.deliver_pending(event.event_id, self._deliver):
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

    def _with_current_text(self, event: MessageCreated, plan: Plan) -> Plan:
        """The previews from the message's current text: message.created may be delivered after
        the message was edited or deleted (no ordering across events, retries, replays)."""
        current = self._repo.current_body(event.message_id)
        if current is None or current == event.body:
            return plan
        text = preview(current) if current else ""
        return Plan(plan.counters, tuple(replace(n, preview=text) for n in plan.notifications))

    def _deliver(self, n: Notification) -> DeliveryStatus:
        return "delivered" if self._channel.deliver(n) else "skipped"

    # --- reader side (HTTP) -------------------------------------------------------------------

    def list_for_user(
        self, user_id: UUID, *, unread_only: bool = False, before: int | None, limit: int
    ) -> NotificationsPage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        if before is not None and not 1 <= before <= MAX_ID:
            raise InvalidInput("before must be a notification id (a positive 64-bit integer)")
        rooms, items = self._repo.list_for_user(
            user_id, unread_only=unread_only, before=before, limit=limit + 1
        )
        next_before = items[limit - 1].id if len(items) > limit else None
        return NotificationsPage(rooms, items[:limit], next_before)

    def mark_read(
        self,
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
        rooms, items = self._repo.mark_read(user_id, room_ids=room_ids, ids=ids, everything=everything)
        return {"roomsCleared": rooms, "notificationsRead": items}
