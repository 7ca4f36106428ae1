"""Idempotent consumers: the processed-events record, written with the consumer's effect.

Why a table and not Powertools idempotency: the effect (counters, notifications, analytics
rows) lives in Postgres, so recording "event X processed by consumer C" in the SAME transaction
makes the effect and its dedupe record atomic. Powertools idempotency keeps its record in another
store (DynamoDB/Redis) and commits it separately: a crash between the two either double-applies
(record lost) or loses the effect (record kept). The primary key also serializes two concurrent
deliveries of one event: the second waits for the first's COMMIT, then finds the row.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from chatflow.events.schemas import DomainEvent


def record_processed(conn: psycopg.Connection[Any], consumer: str, event: DomainEvent) -> bool:
    """Mark ``event`` processed by ``consumer``; False if it already was (skip the effect).

    Must run inside the transaction that applies the effect.
    """
    if conn.info.transaction_status != TransactionStatus.INTRANS:
        raise RuntimeError("record_processed must run inside the consumer's transaction")
    cur = conn.execute(
        "INSERT INTO processed_events (consumer, event_id, detail_type) VALUES (%s, %s, %s) "
        "ON CONFLICT (consumer, event_id) DO NOTHING",
        (consumer, event.event_id, event.detail_type),
    )
    return cur.rowcount == 1


def purge_processed(conn: psycopg.Connection[Any], older_than: timedelta, limit: int = 5000) -> int:
    """Forget up to ``limit`` dedupe records older than ``older_than``. Keep them longer than the
    archive's retention, or a replay from further back would apply events again (docs/events.md)."""
    return conn.execute(
        """DELETE FROM processed_events WHERE (consumer, event_id) IN (
               SELECT consumer, event_id FROM processed_events
                WHERE processed_at < now() - %s ORDER BY processed_at LIMIT %s)""",
        (older_than, limit),
    ).rowcount
