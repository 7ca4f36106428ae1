"""Postgres implementation of :class:`chatflow.domain.ports.MessageRepository`.

Send (contract 3), in ONE writer transaction, in pipeline mode (two waits for the transaction):
  round trip 1: ``BEGIN``; the sender's message with this client id, if any (a resend returns it
     untouched and writes nothing); ``SELECT ... FOR NO KEY UPDATE`` the room row with the
     sender's membership and handle, the mentioned members and ``now()``. Concurrent sends to a
     room queue here, which is what makes ``seq`` gap-free: the increment commits or rolls back
     together with the message;
  the domain check runs on the locked rows; seq = last_seq + 1; the MessageCreated event is
  built (created_at = the transaction's now());
  round trip 2: ONE statement inserts the message ``ON CONFLICT (sender_id, client_message_id)
     DO NOTHING`` and -- only if it did -- bumps ``last_seq``, the sender's read position and
     inserts the outbox row; then ``COMMIT``. A concurrent duplicate (whose COMMIT the INSERT
     waits for) thus commits nothing and the stored original is returned.
  Then the outbox flush (``after_commit``).
History reads the reader pool with keyset conditions on the primary key (room_id, seq).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow

from chatflow.adapters.postgres import outbox
from chatflow.adapters.postgres.pool import PostgresPools
from chatflow.adapters.postgres.rooms_repo import (
    ROOM_COLUMNS,
    membership_from_row,
    room_from_row,
    utc,
    write_transaction,
)
from chatflow.domain.ports import MessageCheck, RoomCheck
from chatflow.domain.room_models import HistoryPage, Message
from chatflow.errors import NotFound
from chatflow.events.schemas import DomainEvent
from chatflow.settings import Settings

Row = dict[str, Any]

_MESSAGE_COLUMNS = """m.room_id, m.seq, m.id, m.sender_id, u.handle AS sender_handle, m.client_message_id,
    m.body, m.created_at, m.edited_at, m.deleted_at"""


def message_from_row(row: Row, mentions: Sequence[str] = ()) -> Message:
    return Message(
        room_id=row["room_id"],
        seq=row["seq"],
        id=row["id"],
        sender_id=row["sender_id"],
        sender_handle=row["sender_handle"],
        client_message_id=row["client_message_id"],
        # NULL once deleted (the tombstone keeps no text; migration 0061): "" in the domain.
        body=row["body"] or "",
        created_at=utc(row["created_at"]),
        edited_at=None if row["edited_at"] is None else utc(row["edited_at"]),
        deleted_at=None if row["deleted_at"] is None else utc(row["deleted_at"]),
        mentions=tuple(mentions),
    )


class _DuplicateSend(Exception):
    """Raised inside the send transaction to roll it back when the client id already exists."""

    def __init__(self, original: Message) -> None:
        super().__init__("duplicate send")
        self.original = original


def _fetch(
    conn: psycopg.Connection[DictRow], where: str, params: Sequence[Any], *, lock: bool = False
) -> Row | None:
    query = f"SELECT {_MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id WHERE {where}"  # noqa: S608
    if lock:
        query += " FOR UPDATE OF m"
    return conn.execute(query, params).fetchone()


class PostgresMessageRepository:
    def __init__(self, pools: PostgresPools, settings: Settings, after_commit: Callable[[], object]) -> None:
        self._pools = pools
        self._source = settings.event_source
        #: Runs after every write transaction's COMMIT: the container's outbox flush.
        self._after_commit = after_commit

    def _find_by_client_id(self, sender_id: UUID, client_message_id: str) -> Message | None:
        with self._pools.writer().connection() as conn:
            row = _fetch(
                conn, "m.sender_id = %s AND m.client_message_id = %s", (sender_id, client_message_id)
            )
        return None if row is None else message_from_row(row)

    def insert(
        self,
        *,
        room_id: UUID,
        message_id: UUID,
        sender_id: UUID,
        client_message_id: str,
        body: str,
        mention_candidates: Sequence[str],
        check: RoomCheck,
        event: Callable[[Message], DomainEvent],
    ) -> tuple[Message, bool]:
        try:
            with self._pools.writer().connection() as conn:
                try:
                    message, created = self._insert_on(
                        conn,
                        room_id=room_id,
                        message_id=message_id,
                        sender_id=sender_id,
                        client_message_id=client_message_id,
                        body=body,
                        mention_candidates=mention_candidates,
                        check=check,
                        event=event,
                    )
                except BaseException:
                    # Whatever failed (a domain check, a duplicate, the server): the connection
                    # goes back to the pool outside any transaction.
                    if conn.info.transaction_status != TransactionStatus.IDLE:
                        conn.execute("ROLLBACK")
                    raise
        except _DuplicateSend as dup:
            return dup.original, False
        # The connection is back in the pool (a Lambda's pool may hold just one).
        if not created:
            # A concurrent identical send committed first (the INSERT waited for it).
            original = self._find_by_client_id(sender_id, client_message_id)
            assert original is not None, "conflicting message row vanished"
            return original, False
        self._after_commit()
        return message, True

    def _insert_on(
        self,
        conn: psycopg.Connection[DictRow],
        *,
        room_id: UUID,
        message_id: UUID,
        sender_id: UUID,
        client_message_id: str,
        body: str,
        mention_candidates: Sequence[str],
        check: RoomCheck,
        event: Callable[[Message], DomainEvent],
    ) -> tuple[Message, bool]:
        # Pipeline mode with an explicit BEGIN/COMMIT (the pool's connections are autocommit):
        # BEGIN goes out with the reads, COMMIT with the write -- two waits for the transaction.
        # (psycopg's conn.transaction() would sync once more before its COMMIT.)
        with conn.pipeline() as pipe:
            conn.execute("BEGIN")
            existing = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id "  # noqa: S608
                "WHERE m.sender_id = %s AND m.client_message_id = %s",
                (sender_id, client_message_id),
            )
            # Lock the room; read the sender's membership and handle, which mention
            # candidates are members (from the handle index, not the room's member list, so
            # big rooms cost nothing extra) and the transaction's now() (= created_at).
            locked = conn.execute(
                f"""SELECT {ROOM_COLUMNS}, r.last_seq, u.handle AS sender_handle,
                           m.role AS m_role, m.last_read_seq AS m_last_read_seq,
                           m.joined_at AS m_joined_at, now() AS tx_now,
                           ARRAY(SELECT c.handle FROM users c
                                  WHERE lower(c.handle) = ANY(%(candidates)s)
                                    AND EXISTS (SELECT 1 FROM memberships cm
                                                 WHERE cm.room_id = r.id AND cm.user_id = c.id)
                           ) AS mentioned
                      FROM rooms r
                      LEFT JOIN memberships m ON m.room_id = r.id AND m.user_id = %(sender)s
                      LEFT JOIN users u ON u.id = m.user_id
                     WHERE r.id = %(room)s
                       FOR NO KEY UPDATE OF r""",  # noqa: S608 -- fixed column list
                {"room": room_id, "sender": sender_id, "candidates": list(mention_candidates)},
            )
            pipe.sync()  # round trip 1: BEGIN + both reads
            # A retry returns the original untouched (before any membership rule).
            original = existing.fetchone()
            if original is not None:
                raise _DuplicateSend(message_from_row(original))
            row = locked.fetchone()
            if row is None:
                raise NotFound("room not found", code="room_not_found")
            check(room_from_row(row), membership_from_row(row, room_id, sender_id))
            seq = int(row["last_seq"]) + 1
            by_lower = {h.lower(): h for h in row["mentioned"]}
            message = Message(
                room_id=room_id,
                seq=seq,
                id=message_id,
                sender_id=sender_id,
                sender_handle=row["sender_handle"],
                client_message_id=client_message_id,
                body=body,
                created_at=utc(row["tx_now"]),
                mentions=tuple(by_lower[c] for c in mention_candidates if c in by_lower),
            )
            ev_id, ev_type, ev_source, ev_detail = outbox.row_values(event(message), source=self._source)
            # Round trip 2 (with COMMIT): the message, the new last_seq, the sender's read
            # position and the MessageCreated outbox row -- all only when the insert did
            # (a concurrent duplicate, which the INSERT waits for, inserts nothing: the
            # transaction then commits nothing and the original is returned).
            inserted = conn.execute(
                f"""WITH ins AS (
                       INSERT INTO messages
                              (room_id, seq, id, sender_id, client_message_id, body, created_at)
                       VALUES (%(room)s, %(seq)s, %(id)s, %(sender)s, %(client_id)s, %(body)s,
                               %(created_at)s)
                       ON CONFLICT (sender_id, client_message_id) DO NOTHING
                       RETURNING created_at
                   ), bump AS (
                       UPDATE rooms SET last_seq = %(seq)s
                        WHERE id = %(room)s AND EXISTS (SELECT 1 FROM ins)
                   ), seen AS (
                       UPDATE memberships SET last_read_seq = GREATEST(last_read_seq, %(seq)s)
                        WHERE room_id = %(room)s AND user_id = %(sender)s AND EXISTS (SELECT 1 FROM ins)
                   ), event AS (
                       INSERT INTO outbox ({outbox.INSERT_COLUMNS})
                       SELECT %(ev_id)s, %(ev_type)s, %(ev_source)s, %(ev_detail)s
                        WHERE EXISTS (SELECT 1 FROM ins)
                   )
                   SELECT created_at FROM ins""",  # noqa: S608 -- fixed column list
                {
                    "room": room_id,
                    "seq": seq,
                    "id": message_id,
                    "sender": sender_id,
                    "client_id": client_message_id,
                    "body": body,
                    "created_at": row["tx_now"],
                    "ev_id": ev_id,
                    "ev_type": ev_type,
                    "ev_source": ev_source,
                    "ev_detail": ev_detail,
                },
            )
            conn.execute("COMMIT")
        # Leaving the pipeline synced: round trip 2, the write and its COMMIT.
        return message, inserted.fetchone() is not None

    def update(
        self,
        room_id: UUID,
        seq: int,
        check: MessageCheck,
        change: Callable[[Message], tuple[Message, DomainEvent] | None],
    ) -> Message | None:
        with write_transaction(self._pools, self._after_commit) as conn:
            row = _fetch(conn, "m.room_id = %s AND m.seq = %s", (room_id, seq), lock=True)
            if row is None:
                return None
            current = message_from_row(row)
            check(current)
            outcome = change(current)
            if outcome is None:
                return current
            updated, event = outcome
            conn.execute(
                """UPDATE messages SET body = %s, edited_at = %s, deleted_at = %s
                    WHERE room_id = %s AND seq = %s""",
                (
                    None if updated.deleted_at is not None else updated.body,  # deleted: no text kept
                    updated.edited_at,
                    updated.deleted_at,
                    room_id,
                    seq,
                ),
            )
            outbox.enqueue(conn, event, source=self._source)
        return updated

    def history(
        self, room_id: UUID, *, before: int | None, after: int | None, limit: int
    ) -> HistoryPage | None:
        conditions = [sql.SQL("m.room_id = r.id")]
        params: dict[str, Any] = {"room": room_id, "limit": limit}
        if before is not None:
            conditions.append(sql.SQL("m.seq < %(before)s"))
            params["before"] = before
        if after is not None:
            conditions.append(sql.SQL("m.seq > %(after)s"))
            params["after"] = after
        # Only `after` pages forward from a point; otherwise the newest `limit` below `before`.
        ascending = after is not None
        query = sql.SQL(
            """SELECT r.last_seq AS room_last_seq, page.* FROM rooms r
               LEFT JOIN LATERAL (
                   SELECT {columns} FROM messages m JOIN users u ON u.id = m.sender_id
                    WHERE {conditions} ORDER BY m.seq {direction} LIMIT %(limit)s
               ) page ON true
              WHERE r.id = %(room)s"""
        ).format(
            columns=sql.SQL(_MESSAGE_COLUMNS),
            conditions=sql.SQL(" AND ").join(conditions),
            direction=sql.SQL("ASC" if ascending else "DESC"),
        )
        # One statement: the page and last_seq come from the same snapshot.
        with self._pools.reader().connection() as conn:
            rows = conn.execute(query, params).fetchall()
        if not rows:
            return None
        last_seq = int(rows[0]["room_last_seq"])
        messages = [message_from_row(r) for r in rows if r["seq"] is not None]
        messages.sort(key=lambda m: m.seq)
        # Sequences are gap-free and messages are never hard-deleted, so 1..last_seq all exist:
        # whether older/newer messages exist follows from the page's edges.
        prev_cursor = messages[0].seq if messages and messages[0].seq > 1 else None
        next_cursor = messages[-1].seq if messages and messages[-1].seq < last_seq else None
        return HistoryPage(
            messages=messages, last_seq=last_seq, prev_cursor=prev_cursor, next_cursor=next_cursor
        )
