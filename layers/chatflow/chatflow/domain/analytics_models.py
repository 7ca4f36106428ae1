"""Value objects of analytics (plain dataclasses, no I/O): what one event adds, and the figures
read back. Shared by :mod:`chatflow.domain.analytics`, the ports and the Postgres adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Delta:
    day: date
    counter: str
    active_user: UUID | None = None
    room_hour: tuple[UUID, datetime] | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    duplicate: bool
    new_active_user: bool = False


@dataclass(frozen=True, slots=True)
class DailyFigures:
    day: date
    active_users: int
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoomHour:
    room_id: UUID
    hour: datetime
    messages: int


@dataclass(frozen=True, slots=True)
class Report:
    start: date
    end: date
    daily: list[DailyFigures]
    rooms_hourly: list[RoomHour]
    truncated: bool
