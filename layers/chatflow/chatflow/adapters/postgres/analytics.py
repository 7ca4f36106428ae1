"""Postgres implementation of :class:`chatflow.domain.ports.AnalyticsRepository`."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from psycopg.rows import dict_row

from chatflow.adapters.postgres.consumers import record_processed
from chatflow.adapters.postgres.pool import PostgresPools
from chatflow.domain.analytics_models import Applied, DailyFigures, Delta, RoomHour
from chatflow.events.schemas import DomainEvent


class PostgresAnalyticsRepository:
    def __init__(self, pools: PostgresPools) -> None:
        self._writer = pools.writer
        self._reader = pools.reader

    def apply(self, consumer: str, event: DomainEvent, delta: Delta) -> Applied:
        with self._writer().connection() as conn, conn.transaction():
            if not record_processed(conn, consumer, event):
                return Applied(duplicate=True)
            conn.execute(
                """INSERT INTO analytics_daily_counters AS c (day, metric, value) VALUES (%s, %s, 1)
                   ON CONFLICT (day, metric) DO UPDATE SET value = c.value + 1""",
                (delta.day, delta.counter),
            )
            new_active = False
            if delta.active_user is not None:
                new_active = (
                    conn.execute(
                        "INSERT INTO analytics_daily_active_users (day, user_id) VALUES (%s, %s) "
                        "ON CONFLICT DO NOTHING",
                        (delta.day, delta.active_user),
                    ).rowcount
                    == 1
                )
            if delta.room_hour is not None:
                room_id, hour = delta.room_hour
                conn.execute(
                    """INSERT INTO analytics_room_hourly AS r (room_id, hour, messages) VALUES (%s, %s, 1)
                       ON CONFLICT (room_id, hour) DO UPDATE SET messages = r.messages + 1""",
                    (room_id, hour),
                )
            return Applied(duplicate=False, new_active_user=new_active)

    def daily(self, start: date, end: date) -> list[DailyFigures]:
        # Reader: reports tolerate replica lag.
        with self._reader().connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                """SELECT day, count(*) AS n FROM analytics_daily_active_users
                    WHERE day BETWEEN %s AND %s GROUP BY day""",
                (start, end),
            )
            active = {r["day"]: int(r["n"]) for r in cur.fetchall()}
            cur.execute(
                "SELECT day, metric, value FROM analytics_daily_counters WHERE day BETWEEN %s AND %s",
                (start, end),
            )
            counters: dict[date, dict[str, int]] = {}
            for r in cur.fetchall():
                counters.setdefault(r["day"], {})[r["metric"]] = int(r["value"])
        days = sorted(set(active) | set(counters))
        return [DailyFigures(d, active.get(d, 0), counters.get(d, {})) for d in days]

    def rooms_hourly(
        self, start: datetime, end: datetime, room_id: UUID | None, limit: int
    ) -> list[RoomHour]:
        with self._reader().connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                """SELECT room_id, hour, messages FROM analytics_room_hourly
                    WHERE hour >= %s AND hour < %s AND (%s::uuid IS NULL OR room_id = %s)
                    ORDER BY hour DESC, messages DESC, room_id LIMIT %s""",
                (start, end, room_id, room_id, limit),
            )
            return [RoomHour(r["room_id"], r["hour"], int(r["messages"])) for r in cur.fetchall()]
