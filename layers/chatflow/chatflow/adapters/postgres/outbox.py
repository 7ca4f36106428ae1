"""Transactional outbox: domain events written in the same transaction as the change.

Writers call :func:`enqueue` inside their transaction; after COMMIT they call the container's
OutboxFlusher (``chatflow.adapters.outbox_relay.AfterCommitFlusher``). A rolled-back change rolls
back its event row, and a committed change always has one: the relay (right after commit) or the
scheduled sweep (``functions/outbox_relay``) sends it to EventBridge. See docs/events.md.

The relay claims rows with one ``UPDATE ... RETURNING`` that leases them (``next_attempt_at`` moves
:data:`CLAIM_LEASE` ahead; the pick uses ``FOR UPDATE SKIP LOCKED``), so two relays never send
the same row and no transaction stays open across PutEvents; one more UPDATE records every
row's outcome. A relay that dies after claiming leaves its rows to the sweep once the lease
ends; one that dies between PutEvents and that UPDATE (or outlives its lease) can resend a row,
which consumers absorb (they deduplicate on ``event_id``).
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


class OutboxError(RuntimeError):
    """Programming error using the outbox (e.g. enqueue outside a transaction)."""


def enqueue(conn: psycopg.Connection[Any], event: DomainEvent, *, source: str) -> None:
    """Insert ``event`` into ``outbox`` inside the caller's open transaction.

    The event is validated first (:class:`chatflow.events.schemas.InvalidEvent` on failure, and
    then nothing is written). Refuses an autocommit connection that is not inside a
    transaction block: the row would commit on its own, detached from the change it describes.
    """
    values = row_values(event, source=source)
    if conn.autocommit and conn.info.transaction_status != TransactionStatus.INTRANS:
        raise OutboxError("outbox.enqueue must run inside the writer's transaction (conn.transaction())")
    conn.execute(f"INSERT INTO outbox ({INSERT_COLUMNS}) VALUES (%s, %s, %s, %s)", values)  # noqa: S608


#: The columns :func:`row_values` fills, in order.
INSERT_COLUMNS = "event_id, detail_type, source, detail"


def row_values(event: DomainEvent, *, source: str) -> tuple[UUID, str, str, Jsonb]:
    """The validated outbox row of ``event`` (:data:`INSERT_COLUMNS` order), for writers that
    fold the outbox insert into their own statement (one round trip; it must still run in the
    change's transaction). Raises InvalidEvent like :func:`enqueue`."""
    valid = ensure_valid(event)
    return (valid.event_id, valid.detail_type, source, Jsonb(valid.detail()))


def enqueue_many(conn: psycopg.Connection[Any], events: Sequence[DomainEvent], *, source: str) -> None:
    for event in events:
        enqueue(conn, event, source=source)


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


#: How long claimed rows are reserved for the relay that claimed them. Longer than any function
#: that relays may run (catalog timeouts are at most 300 s), so a live relay never loses its rows.
CLAIM_LEASE = timedelta(minutes=5)


def claim_due(
    conn: psycopg.Connection[Any], limit: int, *, lease: timedelta = CLAIM_LEASE
) -> list[OutboxRow]:
    """Claim up to ``limit`` unpublished rows that are due, oldest first, skipping rows another
    relay is claiming: they stay reserved for ``lease`` (not due for anyone else) until
    :func:`record_outcome`. One statement; commits on its own on an autocommit connection."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """UPDATE outbox o SET next_attempt_at = now() + %(lease)s
                WHERE o.id IN (SELECT id FROM outbox
                                WHERE published_at IS NULL AND next_attempt_at <= now()
                                ORDER BY next_attempt_at, id
                                LIMIT %(limit)s
                                FOR UPDATE SKIP LOCKED)
            RETURNING o.id, o.event_id, o.detail_type, o.source, o.detail, o.attempts, o.created_at""",
            {"lease": lease, "limit": limit},
        )
        return sorted((OutboxRow(**row) for row in cur.fetchall()), key=lambda r: r.id)


def record_outcome(
    conn: psycopg.Connection[Any],
    published: Sequence[int],
    failures: Sequence[tuple[int, str, timedelta]],
) -> None:
    """One attempt per claimed row, in ONE statement: ``published`` rows are marked sent; each
    failure (row id, error text, delay before the next attempt) is recorded and backed off."""
    if not published and not failures:
        return
    ids = [*published, *(f[0] for f in failures)]
    ok = [True] * len(published) + [False] * len(failures)
    errors: list[str | None] = [None] * len(published) + [f[1][:2000] for f in failures]
    delays = [timedelta(0)] * len(published) + [f[2] for f in failures]
    conn.execute(
        """UPDATE outbox o
              SET attempts = o.attempts + 1,
                  published_at = CASE WHEN r.ok THEN now() END,
                  last_error = r.error,
                  next_attempt_at = CASE WHEN r.ok THEN o.next_attempt_at ELSE now() + r.delay END
             FROM unnest(%s::bigint[], %s::boolean[], %s::text[], %s::interval[]) AS r(id, ok, error, delay)
            WHERE o.id = r.id""",
        (ids, ok, errors, delays),
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
