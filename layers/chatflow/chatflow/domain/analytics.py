"""Analytics from the event stream: messages per room per hour, daily active users, daily
counters (connections opened, messages, rooms, joins...).

``functions/analytics`` receives every chat event (rule ``analytics-all-chat-events``),
:func:`plan` turns it into a ``Delta`` (pure), and the repository applies the delta and the
consumer's processed-event record in one transaction: a redelivered or replayed event is never
counted twice. UTC days and hours; a message counts in the hour it was created.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from chatflow.domain.analytics_models import Applied, DailyFigures, Delta, Report
from chatflow.errors import InvalidInput
from chatflow.events.schemas import (
    ConnectionOpened,
    DomainEvent,
    MessageCreated,
    MessageEdited,
    RoomCreated,
    UserOnline,
)

if TYPE_CHECKING:
    from chatflow.domain.ports import AnalyticsRepository

CONSUMER = "analytics"
MAX_RANGE_DAYS = 92
MAX_ROOM_ROWS = 2000

#: Daily counter name per detail type.
COUNTER_OF: dict[str, str] = {
    "message.created": "messages_created",
    "message.edited": "messages_edited",
    "message.deleted": "messages_deleted",
    "room.created": "rooms_created",
    "member.joined": "members_joined",
    "member.left": "members_left",
    "user.online": "users_online",
    "user.offline": "users_offline",
    "user.banned": "users_banned",
    "connection.opened": "connections_opened",
}


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC)


def plan(event: DomainEvent) -> Delta:
    """What one event adds to the figures."""
    at = _utc(event.occurred_at)
    active: UUID | None = None
    room_hour: tuple[UUID, datetime] | None = None
    if isinstance(event, MessageCreated):
        at = _utc(event.created_at)
        active = event.sender_id
        room_hour = (event.room_id, at.replace(minute=0, second=0, microsecond=0))
    elif isinstance(event, MessageEdited):
        active = event.editor_id
    elif isinstance(event, ConnectionOpened | UserOnline):
        active = event.user_id
    elif isinstance(event, RoomCreated):
        active = event.created_by
    # Other events (deleted, joined, left, offline, banned, and types added later) only count.
    counter = COUNTER_OF.get(event.detail_type) or event.detail_type.replace(".", "_")
    return Delta(at.date(), counter, active, room_hour)


class AnalyticsService:
    """Counts events (:meth:`handle_event`) and reports the figures (:meth:`report`)."""

    def __init__(self, repo: AnalyticsRepository) -> None:
        self._repo = repo

    def handle_event(self, event: DomainEvent) -> tuple[Delta, Applied]:
        delta = plan(event)
        return delta, self._repo.apply(CONSUMER, event, delta)

    def report(
        self,
        *,
        start: date | None,
        end: date | None,
        room_id: UUID | None,
        today: date | None = None,
    ) -> Report:
        """Figures for the UTC days ``start``..``end`` inclusive (default: the last 7 days)."""
        today = today or datetime.now(UTC).date()
        end = end or today
        if start is None:
            # The default window must not step below date.min (``to=0001-01-03``).
            start = end - timedelta(days=6) if end > date.min + timedelta(days=6) else date.min
        if start > end:
            raise InvalidInput("'from' must not be after 'to'")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise InvalidInput(f"at most {MAX_RANGE_DAYS} days per request")
        if end == date.max:
            # The hourly window ends at the next midnight, which does not exist after date.max.
            raise InvalidInput(f"'to' must be before {date.max.isoformat()}")
        daily = self._repo.daily(start, end)
        lo = datetime(start.year, start.month, start.day, tzinfo=UTC)
        hi = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
        rooms = self._repo.rooms_hourly(lo, hi, room_id, MAX_ROOM_ROWS + 1)
        return Report(
            start, end, _fill_days(daily, start, end), rooms[:MAX_ROOM_ROWS], len(rooms) > MAX_ROOM_ROWS
        )


def _fill_days(daily: Sequence[DailyFigures], start: date, end: date) -> list[DailyFigures]:
    """One entry per day of the range, zeros where nothing happened (charts need no gaps)."""
    by_day = {d.day: d for d in daily}
    out = []
    day = start
    while day <= end:
        out.append(by_day.get(day, DailyFigures(day, 0, {})))
        day += timedelta(days=1)
    return out
