"""Outbox relay: sends committed outbox rows to EventBridge.

Two callers, one code path:

* :class:`AfterCommitFlusher` (the ``OutboxFlusher`` port) — writers call it right after their
  transaction commits, so events usually reach the bus within milliseconds. Best effort: it never
  raises (the change is already committed; a failure only delays the event) and retries little,
  to keep the request fast.
* the scheduled sweep (``functions/outbox_relay``) — :meth:`OutboxRelay.drain` every minute sends
  whatever the flush did not: rows whose flush failed, or whose writer died between COMMIT and
  the flush.

Per claim: lease due rows (one ``UPDATE ... RETURNING``, ``FOR UPDATE SKIP LOCKED`` pick; see
``outbox.claim_due``), re-validate each detail against its schema, PutEvents in batches of 10
(partial failures retried with backoff), then ONE UPDATE marks sent rows ``published_at`` and
failed ones ``attempts + 1``, ``last_error`` and a ``next_attempt_at`` with exponential backoff.
The lease is what makes concurrent relays (flush + sweep, two containers) never send the same
row twice, without a transaction held open across PutEvents: a flush costs two statements.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from chatflow.adapters.postgres import outbox
from chatflow.adapters.postgres.consumers import purge_processed
from chatflow.events.schemas import DomainEvent, InvalidEvent, parse_detail

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from chatflow.adapters.eventbridge import EventBridgePublisher
    from chatflow.adapters.postgres.outbox import OutboxRow, OutboxStats

log = logging.getLogger(__name__)


@dataclass
class RelayResult:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    invalid: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: RelayResult) -> None:
        self.claimed += other.claimed
        self.sent += other.sent
        self.failed += other.failed
        self.invalid += other.invalid
        self.errors.extend(other.errors[: max(0, 10 - len(self.errors))])


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay before a failed row is tried again: base * 2**attempts, capped."""

    base_s: float = 2.0
    max_s: float = 900.0
    #: A row whose detail no longer validates needs a human (or a schema fix): retry slowly.
    invalid_s: float = 3600.0

    def delay(self, attempts_before: int) -> timedelta:
        return timedelta(seconds=min(self.max_s, self.base_s * (2 ** min(attempts_before, 30))))


@dataclass(frozen=True, slots=True)
class Housekeeping:
    backlog: OutboxStats
    purged_published: int
    purged_processed_events: int


class OutboxRelay:
    def __init__(
        self,
        *,
        pool: Callable[[], ConnectionPool[Any]],
        publisher: EventBridgePublisher,
        claim_size: int = 50,
        backoff: BackoffPolicy | None = None,
    ) -> None:
        self._pool = pool
        self.publisher = publisher
        self.claim_size = claim_size
        self.backoff = backoff or BackoffPolicy()

    def run_once(self, limit: int | None = None) -> RelayResult:
        """Claim (lease) up to ``limit`` due rows, send them, record the outcome: two statements."""
        with self._pool().connection() as conn:
            rows = outbox.claim_due(conn, limit or self.claim_size)
            return self._relay(conn, rows)

    def drain(self, max_rows: int = 5000) -> RelayResult:
        """Run claims until nothing is due (or ``max_rows`` were handled); the sweep uses this."""
        total = RelayResult()
        while total.claimed < max_rows:
            result = self.run_once(min(self.claim_size, max_rows - total.claimed))
            total.add(result)
            # Stop when the claim came back short, or when nothing in it went out (the bus is
            # down: the rows are now backed off, and hammering it again now would not help).
            if result.claimed < self.claim_size or result.sent == 0:
                break
        return total

    def backlog(self) -> OutboxStats:
        """Rows not sent yet and the age of the oldest (the sweep's metrics)."""
        with self._pool().connection() as conn:
            return outbox.stats(conn)

    def housekeeping(self, *, outbox_retention: timedelta, processed_retention: timedelta) -> Housekeeping:
        """The backlog (for the sweep's metrics), then published rows and consumers' dedupe
        records past their retention deleted in small bounded batches."""
        with self._pool().connection() as conn:
            return Housekeeping(
                backlog=outbox.stats(conn),
                purged_published=outbox.purge_published(conn, outbox_retention),
                purged_processed_events=purge_processed(conn, processed_retention),
            )

    def _relay(self, conn: psycopg.Connection[Any], rows: list[OutboxRow]) -> RelayResult:
        result = RelayResult(claimed=len(rows))
        if not rows:
            return result
        events: list[DomainEvent] = []
        by_event: dict[Any, OutboxRow] = {}
        failures: list[tuple[int, str, timedelta]] = []
        for row in rows:
            try:
                event = parse_detail(row.detail_type, row.detail)
            except InvalidEvent as exc:
                # Never publish what does not match its schema; keep the row for a human.
                log.error("outbox row %s (%s) is invalid, not sent: %s", row.id, row.event_id, exc)
                failures.append((row.id, f"invalid: {exc}", timedelta(seconds=self.backoff.invalid_s)))
                result.invalid += 1
                result.errors.append(str(exc))
                continue
            events.append(event)
            by_event[event.event_id] = row
        failed = self.publisher.send(events) if events else []
        failed_ids = {f.event_id for f in failed}
        for f in failed:
            row = by_event[f.event_id]
            failures.append((row.id, f.describe(), self.backoff.delay(row.attempts)))
            result.errors.append(f.describe())
        sent_ids = [by_event[e.event_id].id for e in events if e.event_id not in failed_ids]
        outbox.record_outcome(conn, sent_ids, failures)
        result.sent = len(sent_ids)
        result.failed = len(failed)
        if failed:
            log.warning("outbox relay: %d sent, %d failed (%s)", result.sent, result.failed, result.errors[0])
        return result


# --- after-commit flush --------------------------------------------------------------------


class AfterCommitFlusher:
    """The ``OutboxFlusher`` port: writers call :meth:`flush` right after COMMIT.

    ``relay`` builds the relay on first use (few, short retries: this runs inside a user's
    request; the sweep retries harder). ``enabled`` is False for local runs without an EventBridge
    endpoint (``chatflow.adapters.eventbridge.bus_configured``): rows then wait for a sweep.
    """

    def __init__(self, relay: Callable[[], OutboxRelay], *, enabled: bool, limit: int = 50) -> None:
        self._relay = relay
        self.enabled = enabled
        self.limit = limit
        #: Inside :meth:`deferred`: the limits of the flushes asked for so far (else None).
        self._deferred: ContextVar[list[int] | None] = ContextVar(f"outbox_deferred_{id(self)}", default=None)

    def flush(self, limit: int | None = None) -> RelayResult | None:
        """Send due outbox rows now. Call AFTER the writer's transaction committed; never raises.

        Returns the outcome, or None when held (:meth:`deferred`), skipped (no bus configured
        locally) or when the relay itself failed (Postgres down: the sweep sends the rows later).
        """
        limit = limit or self.limit
        if (deferred := self._deferred.get()) is not None:
            deferred.append(limit)
            return None
        if not self.enabled:
            log.debug("outbox flush skipped: no EventBridge endpoint configured")
            return None
        try:
            return self._relay().run_once(limit)
        except Exception:
            log.warning(
                "outbox flush after commit failed; the scheduled sweep will send the rows", exc_info=True
            )
            return None

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold the :meth:`flush` calls made inside the block; run one at its end.

        For writers with more after-commit work that must not wait on the bus: a membership change
        invalidates the room cache first (a removed member loses access at once, even when PutEvents
        is slow or the function times out during it), then flushes. The flush also runs when the
        block raised: whatever committed in it is sent. Nested blocks flush once, at the outermost.
        """
        if self._deferred.get() is not None:
            yield
            return
        token = self._deferred.set([])
        try:
            yield
        finally:
            asked = self._deferred.get() or []
            self._deferred.reset(token)
            if asked:
                self.flush(max(asked))
