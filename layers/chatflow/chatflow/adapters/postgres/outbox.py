"""Transactional outbox: domain events written in the same transaction as the change.

Writers call :func:`enqueue` inside their transaction; after COMMIT they call
``chatflow.events.relay.flush_after_commit()``. A rolled-back change rolls back its event row,
and a committed change always has one: the relay (right after commit) or the scheduled sweep
(``functions/outbox_relay``) sends it to EventBridge. See docs/events.md.

The relay claims rows with ``FOR UPDATE SKIP LOCKED`` and keeps the lock until the row is
marked published, so two relays never send the same row; a crash between PutEvents and the
UPDATE can resend a row, which consumers absorb (they deduplicate on ``event_id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from chatflow.events.schemas import DomainEvent, ensure_valid
from chatflow.settings import get_settings


class OutboxError(RuntimeError):
    """Programming error using the outbox (e.g. enqueue outside a transaction)."""


def enqueue(conn: psycopg.Connection[Any], event: DomainEvent, *, source: str | None = None) -> None:
    """Insert ``event`` into ``outbox`` inside the caller's open transaction.

    The event is validated first (:class:`chatflow.events.schemas.InvalidEvent` on failure, and
    then nothing is written). Refuses an autocommit connection that is not inside a
    transaction block: the row would commit on its own, detached from the change it describes.
    """
    valid = ensure_valid(event)
    if conn.autocommit and conn.info.transaction_status != TransactionStatus.INTRANS:
        raise OutboxError("outbox.enqueue must run inside the writer's transaction (conn.transaction())")
    conn.execute(
        "INSERT INTO outbox (event_id, detail_type, source, detail) VALUES (%s, %s, %s, %s)",
        (valid.event_id, valid.detail_type, source or get_settings().event_source, Jsonb(valid.detail())),
    )


def enqueue_many(conn: psycopg.Connection[Any], events: Sequence[DomainEvent]) -> None:
    for event in events:
        enqueue(conn, event)


# --- relay side ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    event_id: UUID
    detail_type: str
    source: str
    detail: dict[str, Any]
    attempts: int
    created_at: datetime


def claim_due(conn: psycopg.Connection[Any], limit: int) -> list[OutboxRow]:
    """Lock up to ``limit`` unpublished rows that are due, oldest first, skipping rows another
    relay holds. Must run inside a transaction; the locks last until it ends."""
    if conn.info.transaction_status != TransactionStatus.INTRANS:
        raise OutboxError("claim_due must run inside a transaction")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """SELECT id, event_id, detail_type, source, detail, attempts, created_at
                 FROM outbox
                WHERE published_at IS NULL AND next_attempt_at <= now()
                ORDER BY next_attempt_at, id
                LIMIT %s
                FOR UPDATE SKIP LOCKED""",
            (limit,),
        )
        return [OutboxRow(**row) for row in cur.fetchall()]


def mark_published(conn: psycopg.Connection[Any], ids: Sequence[int]) -> None:
    if ids:
        conn.execute(
            "UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL "
            "WHERE id = ANY(%s)",
            (list(ids),),
        )


def mark_failed(conn: psycopg.Connection[Any], failures: Sequence[tuple[int, str, timedelta]]) -> None:
    """Record a failed attempt per row: (row id, error text, delay before the next attempt)."""
    if failures:
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = %s, "
                "next_attempt_at = now() + %s WHERE id = %s",
                [(error[:2000], delay, row_id) for row_id, error, delay in failures],
            )


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    oldest_pending_age_s: float | None
    max_attempts: int


def stats(conn: psycopg.Connection[Any]) -> OutboxStats:
    """Backlog of unpublished rows (for metrics and the runbook)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """SELECT count(*) AS pending,
                      extract(epoch FROM now() - min(created_at))::float8 AS oldest,
                      coalesce(max(attempts), 0) AS max_attempts
                 FROM outbox WHERE published_at IS NULL"""
        )
        row = cur.fetchone()
    assert row is not None
    return OutboxStats(int(row["pending"]), row["oldest"], int(row["max_attempts"]))


def purge_published(conn: psycopg.Connection[Any], older_than: timedelta, limit: int = 1000) -> int:
    """Delete up to ``limit`` rows published more than ``older_than`` ago (the archive keeps the
    events). Walks the primary key from the oldest row, so each call stays cheap."""
    cur = conn.execute(
        """DELETE FROM outbox WHERE id IN (
               SELECT id FROM outbox
                WHERE published_at IS NOT NULL AND created_at < now() - %s
                ORDER BY id LIMIT %s)""",
        (older_than, limit),
    )
    return cur.rowcount
