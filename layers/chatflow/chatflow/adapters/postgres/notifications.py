"""Postgres implementation of :class:`chatflow.domain.ports.NotificationRepository`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from chatflow.adapters.postgres.consumers import record_processed
from chatflow.adapters.postgres.pool import PostgresPools
from chatflow.domain.notification_models import (
    DeliveryStatus,
    Notification,
    Plan,
    Recipient,
    RoomAudience,
    RoomUnread,
)
from chatflow.events.schemas import DomainEvent

_NOTIFICATION_COLUMNS = (
    "id, user_id, kind, room_id, event_id, message_id, seq, actor_id, actor_handle, preview, "
    "created_at, read_at"
)


def _notification(row: dict[str, Any]) -> Notification:
    return Notification(**row)


class PostgresNotificationRepository:
    def __init__(self, pools: PostgresPools) -> None:
        self._writer = pools.writer
        self._reader = pools.reader

    # --- consumer ---------------------------------------------------------------------------

    def audience(self, room_id: UUID) -> RoomAudience | None:
        # Writer: membership must be current (a member removed a moment ago gets nothing).
        with self._writer().connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SELECT id, kind, name FROM rooms WHERE id = %s", (room_id,))
            room = cur.fetchone()
            if room is None:
                return None
            cur.execute(
                """SELECT u.id, u.handle FROM memberships m JOIN users u ON u.id = m.user_id
                    WHERE m.room_id = %s AND u.status = 'active'""",
                (room_id,),
            )
            members = tuple(Recipient(r["id"], r["handle"]) for r in cur.fetchall())
        return RoomAudience(room["id"], room["kind"], room["name"], members)

    def handle_of(self, user_id: UUID) -> str | None:
        with self._writer().connection() as conn:
            row = conn.execute("SELECT handle FROM users WHERE id = %s", (user_id,)).fetchone()
        return None if row is None else str(row["handle"] if isinstance(row, dict) else row[0])

    def current_body(self, message_id: UUID) -> str | None:
        # Writer: an edit or delete committed a moment ago must be seen.
        with self._writer().connection() as conn:
            row = conn.execute("SELECT body FROM messages WHERE id = %s", (message_id,)).fetchone()
        if row is None:
            return None
        body = row["body"] if isinstance(row, dict) else row[0]
        return "" if body is None else str(body)

    def set_previews(self, message_id: UUID, preview: str) -> int:
        with self._writer().connection() as conn:
            cur = conn.execute(
                "UPDATE notifications SET preview = %s WHERE message_id = %s AND preview <> %s",
                (preview, message_id, preview),
            )
        return cur.rowcount

    def apply(self, consumer: str, event: DomainEvent, plan: Plan) -> list[int] | None:
        with self._writer().connection() as conn, conn.transaction():
            if not record_processed(conn, consumer, event):
                return None
            if plan.counters:
                with conn.cursor() as cur:
                    cur.executemany(
                        """INSERT INTO notification_counters AS c
                               (user_id, room_id, unread_messages, unread_mentions, last_seq,
                                last_message_at, last_sender_handle)
                           VALUES (%s, %s, %s, %s, %s, %s, %s)
                           ON CONFLICT (user_id, room_id) DO UPDATE SET
                               unread_messages = c.unread_messages + EXCLUDED.unread_messages,
                               unread_mentions = c.unread_mentions + EXCLUDED.unread_mentions,
                               last_seq = greatest(c.last_seq, EXCLUDED.last_seq),
                               last_message_at = greatest(c.last_message_at, EXCLUDED.last_message_at),
                               last_sender_handle = CASE WHEN EXCLUDED.last_seq >= c.last_seq
                                   THEN EXCLUDED.last_sender_handle ELSE c.last_sender_handle END,
                               updated_at = now()""",
                        # Always the same lock order (user, room): two deliveries touching the
                        # same counters concurrently wait for each other instead of deadlocking.
                        [
                            (b.user_id, b.room_id, b.messages, b.mentions, b.seq, b.at, b.sender_handle)
                            for b in sorted(plan.counters, key=lambda b: (str(b.user_id), str(b.room_id)))
                        ],
                    )
            ids: list[int] = []
            for n in plan.notifications:
                row = conn.execute(
                    # A message deleted since the plan read its text gets no preview either.
                    """INSERT INTO notifications (user_id, kind, room_id, event_id, message_id, seq,
                                                  actor_id, actor_handle, preview)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s,
                               CASE WHEN EXISTS (SELECT 1 FROM messages m
                                                  WHERE m.id = %s AND m.deleted_at IS NOT NULL)
                                    THEN '' ELSE %s END)
                       ON CONFLICT (user_id, event_id, kind) DO NOTHING
                       RETURNING id""",
                    (
                        n.user_id,
                        n.kind,
                        n.room_id,
                        event.event_id,
                        n.message_id,
                        n.seq,
                        n.actor_id,
                        n.actor_handle,
                        n.message_id,
                        n.preview,
                    ),
                ).fetchone()
                if row is not None:
                    ids.append(int(row["id"] if isinstance(row, dict) else row[0]))
            return ids

    def deliver_pending(
        self, event_id: UUID, deliver: Callable[[Notification], DeliveryStatus]
    ) -> list[tuple[int, DeliveryStatus | Exception]]:
        results: list[tuple[int, DeliveryStatus | Exception]] = []
        with self._writer().connection() as conn, conn.transaction():
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(
                    f"""SELECT {_NOTIFICATION_COLUMNS} FROM notifications
                         WHERE event_id = %s AND delivery_status = 'pending'
                         ORDER BY id FOR UPDATE SKIP LOCKED""",  # noqa: S608 - constant column list
                    (event_id,),
                )
                rows = [_notification(r) for r in cur.fetchall()]
            for n in rows:
                try:
                    status: DeliveryStatus | Exception = deliver(n)
                except Exception as exc:  # the channel failed: stays pending for the retry
                    status = exc
                if isinstance(status, Exception):
                    conn.execute(
                        "UPDATE notifications SET delivery_attempts = delivery_attempts + 1, "
                        "delivery_error = %s WHERE id = %s",
                        (f"{type(status).__name__}: {status}"[:1000], n.id),
                    )
                else:
                    conn.execute(
                        "UPDATE notifications SET delivery_status = %s, delivery_attempts = "
                        "delivery_attempts + 1, delivery_error = NULL WHERE id = %s",
                        (status, n.id),
                    )
                results.append((n.id, status))
        return results

    # --- reader side ------------------------------------------------------------------------

    def list_for_user(
        self, user_id: UUID, *, unread_only: bool, before: int | None, limit: int
    ) -> tuple[list[RoomUnread], list[Notification]]:
        # Writer, not reader: a client that just marked things read must not see them again.
        # Joined with memberships: a room the user left shows nothing any more, and what the user
        # has read since (markRead moves memberships.last_read_seq) no longer counts as unread.
        # One snapshot for both queries: the consumer writes a message's counter and its
        # notification in one transaction, so a page never shows one without the other.
        with (
            self._writer().connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute(
                """SELECT c.room_id,
                          least(c.unread_messages, c.last_seq - m.last_read_seq) AS unread_messages,
                          least(c.unread_mentions, (
                              SELECT count(*) FROM notifications n
                               WHERE n.user_id = c.user_id AND n.room_id = c.room_id
                                 AND n.kind = 'mention' AND n.read_at IS NULL
                                 AND n.seq > m.last_read_seq))::int AS unread_mentions,
                          c.last_seq, c.last_message_at, c.last_sender_handle
                     FROM notification_counters c
                     JOIN memberships m ON m.room_id = c.room_id AND m.user_id = c.user_id
                    WHERE c.user_id = %s AND (c.unread_messages > 0 OR c.unread_mentions > 0)
                      AND c.last_seq > m.last_read_seq
                    ORDER BY c.last_message_at DESC NULLS LAST, c.room_id""",
                (user_id,),
            )
            rooms = [RoomUnread(**r) for r in cur.fetchall()]
            columns = ", ".join(f"n.{c.strip()}" for c in _NOTIFICATION_COLUMNS.split(","))
            cur.execute(
                f"""SELECT {columns},
                           (n.read_at IS NOT NULL OR coalesce(n.seq <= m.last_read_seq, false)) AS read
                      FROM notifications n
                      JOIN memberships m ON m.room_id = n.room_id AND m.user_id = n.user_id
                     WHERE n.user_id = %s
                       AND (%s::bigint IS NULL OR n.id < %s)
                       AND (NOT %s OR (n.read_at IS NULL AND NOT coalesce(n.seq <= m.last_read_seq, false)))
                     ORDER BY n.id DESC LIMIT %s""",  # noqa: S608 - constant column list
                (user_id, before, before, unread_only, limit),
            )
            items = [_notification(r) for r in cur.fetchall()]
        return rooms, items

    def mark_read(
        self, user_id: UUID, *, room_ids: Sequence[UUID], ids: Sequence[int], everything: bool
    ) -> tuple[int, int]:
        with self._writer().connection() as conn, conn.transaction():
            if everything:
                rooms = _rowcount(
                    conn,
                    "UPDATE notification_counters SET unread_messages = 0, unread_mentions = 0, "
                    "updated_at = now() WHERE user_id = %s AND (unread_messages > 0 OR unread_mentions > 0)",
                    (user_id,),
                )
                items = _rowcount(
                    conn,
                    "UPDATE notifications SET read_at = now() WHERE user_id = %s AND read_at IS NULL",
                    (user_id,),
                )
                return rooms, items
            rooms = items = 0
            if room_ids:
                rooms = _rowcount(
                    conn,
                    "UPDATE notification_counters SET unread_messages = 0, unread_mentions = 0, "
                    "updated_at = now() WHERE user_id = %s AND room_id = ANY(%s) "
                    "AND (unread_messages > 0 OR unread_mentions > 0)",
                    (user_id, list(room_ids)),
                )
                items += _rowcount(
                    conn,
                    "UPDATE notifications SET read_at = now() "
                    "WHERE user_id = %s AND room_id = ANY(%s) AND read_at IS NULL",
                    (user_id, list(room_ids)),
                )
            if ids:
                items += _rowcount(
                    conn,
                    "UPDATE notifications SET read_at = now() "
                    "WHERE user_id = %s AND id = ANY(%s) AND read_at IS NULL",
                    (user_id, list(ids)),
                )
            return rooms, items


def _rowcount(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> int:
    return conn.execute(sql, params).rowcount
