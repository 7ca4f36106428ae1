"""Wire formats: the JSON shapes clients receive (camelCase), one definition per domain value.

HTTP responses, WebSocket frames, the fan-out frame and the notification channel's payload all
shape values here, so a message looks the same on every transport. The domain never imports this
module (import-linter contract): it returns values, the outer layers decide how they travel.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, overload
from uuid import UUID

if TYPE_CHECKING:  # annotations only: a route's cold start loads only its own area's models
    from chatflow.domain.analytics_models import DailyFigures, Report, RoomHour
    from chatflow.domain.notification_models import Notification, NotificationsPage, Outcome, RoomUnread
    from chatflow.domain.realtime_models import PresencePage
    from chatflow.domain.room_models import HistoryPage, Message, Page, RoomView
    from chatflow.domain.user_models import TokenPair, User


@overload
def iso_utc(value: datetime) -> str: ...
@overload
def iso_utc(value: None) -> None: ...
def iso_utc(value: datetime | None) -> str | None:
    """ISO-8601 in UTC with a ``Z`` suffix, the one timestamp form of rooms, messages and users."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- rooms and messages -------------------------------------------------------------------------


def room_to_dict(view: RoomView) -> dict[str, Any]:
    """A room as the caller sees it."""
    room, membership = view.room, view.membership
    return {
        "id": str(room.id),
        "kind": room.kind,
        "name": room.name,
        "topic": room.topic,
        "createdBy": str(room.created_by),
        "createdAt": iso_utc(room.created_at),
        "lastSeq": view.last_seq,
        "memberCount": view.member_count,
        "isMember": membership is not None,
        "role": membership.role if membership else None,
        "lastReadSeq": membership.last_read_seq if membership else None,
        "unread": view.unread,
        "peer": (
            {"id": str(view.peer.id), "handle": view.peer.handle, "displayName": view.peer.display_name}
            if view.peer
            else None
        ),
    }


def room_page_to_dict(page: Page[RoomView]) -> dict[str, Any]:
    return {"rooms": [room_to_dict(v) for v in page.items], "nextCursor": page.next_cursor}


def message_to_dict(message: Message) -> dict[str, Any]:
    """The one shape of a message (HTTP and WebSocket); the body is null once deleted."""
    return {
        "id": str(message.id),
        "roomId": str(message.room_id),
        "seq": message.seq,
        "senderId": str(message.sender_id),
        "senderHandle": message.sender_handle,
        "clientMessageId": message.client_message_id,
        "body": None if message.is_deleted else message.body,
        "createdAt": iso_utc(message.created_at),
        "editedAt": iso_utc(message.edited_at),
        "deletedAt": iso_utc(message.deleted_at),
    }


def history_to_dict(page: HistoryPage) -> dict[str, Any]:
    return {
        "messages": [message_to_dict(m) for m in page.messages],
        "lastSeq": page.last_seq,
        "prevCursor": page.prev_cursor,
        "nextCursor": page.next_cursor,
    }


# --- users and sessions -------------------------------------------------------------------------


def presence_page_to_dict(room_id: UUID, page: PresencePage) -> dict[str, Any]:
    """A room's presence snapshot (HTTP body, the ``presenceSnapshot`` frame, ``joined.presence``):
    online members with the version of their ``online`` transition, as presence frames carry it."""
    body: dict[str, Any] = {
        "roomId": str(room_id),
        "online": [
            {"userId": str(e.user_id), "handle": e.handle, "status": "online", "version": e.version}
            for e in page.online
        ],
        "more": page.more,
    }
    if page.cursor is not None:
        body["cursor"] = page.cursor
    return body


def user_to_dict(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "handle": user.handle,
        "displayName": user.display_name,
        "role": user.role,
        "status": user.status,
        "createdAt": iso_utc(user.created_at),
    }


def token_pair_to_dict(pair: TokenPair) -> dict[str, Any]:
    return {
        "accessToken": pair.access_token,
        "tokenType": "Bearer",
        "expiresIn": pair.expires_in,
        "refreshToken": pair.refresh_token,
        "refreshExpiresIn": pair.refresh_expires_in,
        "user": user_to_dict(pair.user),
    }


# --- notifications ------------------------------------------------------------------------------
# Their timestamps keep Python's isoformat ("+00:00"), as clients have always received them.


def notification_to_dict(n: Notification) -> dict[str, object]:
    return {
        "id": n.id,
        "read": n.read or n.read_at is not None,
        "kind": n.kind,
        "roomId": str(n.room_id),
        "messageId": str(n.message_id) if n.message_id else None,
        "seq": n.seq,
        "actorId": str(n.actor_id) if n.actor_id else None,
        "actorHandle": n.actor_handle,
        "preview": n.preview,
        "createdAt": n.created_at.isoformat(),
        "readAt": n.read_at.isoformat() if n.read_at else None,
    }


def notification_payload(n: Notification) -> dict[str, object]:
    """What a delivery channel (SNS) publishes for one notification."""
    return {"type": "notification", "userId": str(n.user_id), **notification_to_dict(n)}


def room_unread_to_dict(r: RoomUnread) -> dict[str, object]:
    return {
        "roomId": str(r.room_id),
        "unreadMessages": r.unread_messages,
        "unreadMentions": r.unread_mentions,
        "lastSeq": r.last_seq,
        "lastMessageAt": r.last_message_at.isoformat() if r.last_message_at else None,
        "lastSenderHandle": r.last_sender_handle,
    }


def notifications_page_to_dict(page: NotificationsPage) -> dict[str, object]:
    return {
        "rooms": [room_unread_to_dict(r) for r in page.rooms],
        "totalUnreadMessages": sum(r.unread_messages for r in page.rooms),
        "totalUnreadMentions": sum(r.unread_mentions for r in page.rooms),
        "items": [notification_to_dict(n) for n in page.items],
        "nextBefore": page.next_before,
    }


def notification_outcome_to_dict(outcome: Outcome) -> dict[str, object]:
    """The notifications function's result (and log line) for one event."""
    return {
        "eventId": str(outcome.event_id),
        "detailType": outcome.detail_type,
        "duplicate": outcome.duplicate,
        "countersBumped": outcome.counters,
        "notificationsCreated": outcome.created,
        "delivered": outcome.delivered,
        "skipped": outcome.skipped,
        "failed": outcome.failed,
        "previewsUpdated": outcome.previews,
    }


# --- analytics ----------------------------------------------------------------------------------


def daily_figures_to_dict(d: DailyFigures) -> dict[str, object]:
    return {
        "date": d.day.isoformat(),
        "activeUsers": d.active_users,
        "connectionsOpened": d.counters.get("connections_opened", 0),
        "messagesCreated": d.counters.get("messages_created", 0),
        "counters": dict(sorted(d.counters.items())),
    }


def room_hour_to_dict(r: RoomHour) -> dict[str, object]:
    return {"roomId": str(r.room_id), "hour": r.hour.isoformat(), "messages": r.messages}


def analytics_report_to_dict(report: Report) -> dict[str, object]:
    return {
        "from": report.start.isoformat(),
        "to": report.end.isoformat(),
        "daily": [daily_figures_to_dict(d) for d in report.daily],
        "roomsHourly": [room_hour_to_dict(r) for r in report.rooms_hourly],
        "roomsHourlyTruncated": report.truncated,
    }
