"""Transactional outbox + relay against real Postgres and the local EventBridge emulator
(``local_stack.eventbridge`` over HTTP, boto3 ``events`` client with endpoint_url).

Fault injection is the emulator's PutEventsFaults: whole requests failing (bus down) and
individual entries rejected (partial failure).
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from chatflow.adapters.eventbridge import EventBridgePublisher
from chatflow.adapters.outbox_relay import AfterCommitFlusher, BackoffPolicy, OutboxRelay, RelayResult
from chatflow.adapters.postgres import outbox
from chatflow.container import Container
from chatflow.events.schemas import DomainEvent, InvalidEvent, UserBanned, UserOnline
from chatflow.settings import get_settings
from local_stack.eventbridge.http_api import RunningEventBridgeApi
from tests.support.events import archived_event_ids, emulator, events_client, insert_user

DB = psycopg.Connection[dict[str, Any]]
SOURCE = "chatflow.chat"


def writer() -> psycopg.Connection[Any]:
    """An autocommit connection to this run's database, as the writer pool hands out."""
    return psycopg.connect(get_settings().database_url, autocommit=True)


@pytest.fixture
def api(chatflow_env: dict[str, str]) -> Iterator[RunningEventBridgeApi]:
    with emulator() as running:
        yield running


@pytest.fixture
def entry_counts(api: RunningEventBridgeApi) -> list[int]:
    return []


@pytest.fixture
def publisher(api: RunningEventBridgeApi, entry_counts: list[int]) -> EventBridgePublisher:
    client = events_client(api.endpoint_url)

    def record(params: dict[str, Any], **_: Any) -> None:
        entry_counts.append(len(params["Entries"]))

    client.meta.events.register("provide-client-params.events.PutEvents", record)
    return EventBridgePublisher(client=client, bus_name="chatflow", source=SOURCE, sleep=lambda _: None)


@pytest.fixture
def relay(publisher: EventBridgePublisher, container: Container) -> OutboxRelay:
    return OutboxRelay(pool=container.postgres.writer, publisher=publisher, claim_size=50)


def _events(n: int) -> list[DomainEvent]:
    return [UserOnline(user_id=uuid.uuid4()) for _ in range(n)]


def _commit(events: list[DomainEvent]) -> None:
    with writer() as conn, conn.transaction():
        for event in events:
            outbox.enqueue(conn, event, source=SOURCE)


def _rows(db: DB, events: list[DomainEvent]) -> dict[str, dict[str, Any]]:
    rows = db.execute(
        "SELECT event_id, attempts, last_error, published_at, next_attempt_at > now() AS backed_off "
        "FROM outbox WHERE event_id = ANY(%s)",
        ([e.event_id for e in events],),
    ).fetchall()
    return {str(r["event_id"]): r for r in rows}


def _ids(events: list[DomainEvent]) -> list[str]:
    return [str(e.event_id) for e in events]


# --- atomicity -----------------------------------------------------------------------------


def test_rolled_back_change_leaves_no_event_and_committed_change_has_one(db: DB) -> None:
    class Boom(Exception):
        pass

    admin = insert_user(db)
    victim = insert_user(db)
    event = UserBanned(user_id=victim, banned_by=admin)

    def ban_then_fail() -> None:
        with writer() as conn, conn.transaction():
            conn.execute("UPDATE users SET status = 'banned' WHERE id = %s", (victim,))
            outbox.enqueue(conn, event, source=SOURCE)
            raise Boom

    with pytest.raises(Boom):
        ban_then_fail()
    assert _rows(db, [event]) == {}
    assert db.execute("SELECT status FROM users WHERE id = %s", (victim,)).fetchone() == {"status": "active"}

    with writer() as conn, conn.transaction():
        conn.execute("UPDATE users SET status = 'banned' WHERE id = %s", (victim,))
        outbox.enqueue(conn, event, source=SOURCE)
    row = db.execute(
        "SELECT detail_type, source, detail FROM outbox WHERE event_id = %s", (event.event_id,)
    ).fetchone()
    assert row is not None
    assert row["detail_type"] == "user.banned"
    assert row["source"] == "chatflow.chat"
    assert row["detail"]["user_id"] == str(victim)


def test_enqueue_refuses_an_autocommit_connection_outside_a_transaction(chatflow_env: dict[str, str]) -> None:
    event = UserOnline(user_id=uuid.uuid4())
    with writer() as conn, pytest.raises(outbox.OutboxError):
        outbox.enqueue(conn, event, source=SOURCE)


def test_invalid_event_is_refused_before_anything_is_written(db: DB) -> None:
    bad = UserBanned.model_construct(
        event_id=uuid.uuid4(), user_id="not-a-uuid", banned_by=uuid.uuid4(), version=1
    )
    with pytest.raises(InvalidEvent), writer() as conn, conn.transaction():
        outbox.enqueue(conn, bad, source=SOURCE)
    assert db.execute("SELECT count(*) AS n FROM outbox WHERE event_id = %s", (bad.event_id,)).fetchone() == {
        "n": 0
    }


# --- relay ---------------------------------------------------------------------------------


def test_relay_sends_committed_rows_in_batches_of_ten_and_marks_them_published(
    db: DB, api: RunningEventBridgeApi, relay: OutboxRelay, entry_counts: list[int]
) -> None:
    events = _events(23)
    _commit(events)
    result = relay.drain()
    assert result.failed == 0
    assert set(_ids(events)) <= set(archived_event_ids(api))
    assert entry_counts
    assert max(entry_counts) <= 10
    rows = _rows(db, events)
    assert all(r["published_at"] is not None and r["attempts"] == 1 for r in rows.values())
    # Published rows are never sent again.
    relay.drain()
    assert Counter(archived_event_ids(api))[str(events[0].event_id)] == 1


def test_bus_down_during_publish_loses_nothing_and_delivers_after_recovery(
    db: DB, api: RunningEventBridgeApi, relay: OutboxRelay
) -> None:
    events = _events(12)
    _commit(events)
    api.bus.faults.set_unavailable(True)
    result = relay.run_once()
    assert result.sent == 0
    assert result.failed >= 12
    rows = _rows(db, events)
    assert all(r["published_at"] is None for r in rows.values())
    assert all(r["attempts"] == 1 and r["backed_off"] for r in rows.values())
    assert all("InternalException" in r["last_error"] for r in rows.values())
    assert not set(_ids(events)) & set(archived_event_ids(api))

    api.bus.faults.clear()
    # Backed off: a sweep right now leaves them alone...
    relay.drain()
    assert not set(_ids(events)) & set(archived_event_ids(api))
    # ...and once they are due, the sweep delivers each exactly once.
    db.execute(
        "UPDATE outbox SET next_attempt_at = now() WHERE event_id = ANY(%s)", ([e.event_id for e in events],)
    )
    relay.drain()
    counts = Counter(archived_event_ids(api))
    assert all(counts[i] == 1 for i in _ids(events))
    rows = _rows(db, events)
    assert all(
        r["published_at"] is not None and r["attempts"] == 2 and r["last_error"] is None
        for r in rows.values()
    )


def test_partial_failures_are_retried_with_backoff_inside_the_call(
    db: DB, api: RunningEventBridgeApi, relay: OutboxRelay, entry_counts: list[int]
) -> None:
    events = _events(15)
    _commit(events)
    api.bus.faults.fail_entries(4, error_code="ThrottlingException", message="Rate exceeded")
    result = relay.drain()
    assert api.bus.faults.failed_entries == 4
    assert result.failed == 0
    counts = Counter(archived_event_ids(api))
    assert all(counts[i] == 1 for i in _ids(events))
    assert len(entry_counts) >= 3  # two batches plus the retry of the rejected entries
    assert max(entry_counts) <= 10


def test_entries_still_failing_after_retries_stay_pending_with_error(
    db: DB, api: RunningEventBridgeApi, publisher: EventBridgePublisher, container: Container
) -> None:
    events = _events(3)
    _commit(events)
    publisher.max_attempts = 2
    api.bus.faults.fail_entries(1000)
    pool = container.postgres.writer
    result = OutboxRelay(pool=pool, publisher=publisher, backoff=BackoffPolicy(base_s=30)).run_once()
    api.bus.faults.clear()
    assert result.sent == 0
    rows = _rows(db, events)
    assert all(r["published_at"] is None and r["backed_off"] for r in rows.values())
    assert all(r["last_error"].startswith("InternalFailure") for r in rows.values())


def test_non_retryable_entry_error_is_not_retried_in_the_call(
    db: DB, api: RunningEventBridgeApi, relay: OutboxRelay, entry_counts: list[int]
) -> None:
    events = _events(1)
    _commit(events)
    api.bus.faults.fail_entries(1, error_code="AccessDeniedException", message="no")
    before = len(entry_counts)
    result = relay.run_once()
    assert result.failed >= 1
    assert len(entry_counts) - before == 1
    assert _rows(db, events)[str(events[0].event_id)]["last_error"].startswith("AccessDeniedException")


def test_concurrent_relays_never_send_a_row_twice(
    db: DB, api: RunningEventBridgeApi, container: Container
) -> None:
    """Relay A holds its claimed rows (locked) while relay B runs: B skips them (SKIP LOCKED)."""
    events = _events(40)
    _commit(events)
    a_claimed = threading.Event()
    b_done = threading.Event()

    class PausingPublisher(EventBridgePublisher):
        def send(self, events: Any) -> Any:
            a_claimed.set()
            assert b_done.wait(20), "relay B blocked on rows relay A holds"
            return super().send(events)

    pub_a = PausingPublisher(
        client=events_client(api.endpoint_url), bus_name="chatflow", source=SOURCE, sleep=lambda _: None
    )
    pub_b = EventBridgePublisher(
        client=events_client(api.endpoint_url), bus_name="chatflow", source=SOURCE, sleep=lambda _: None
    )
    pool = container.postgres.writer
    results: dict[str, Any] = {}

    def run_a() -> None:
        results["a"] = OutboxRelay(pool=pool, publisher=pub_a, claim_size=20).run_once()

    thread = threading.Thread(target=run_a)
    thread.start()
    assert a_claimed.wait(20)
    try:
        results["b"] = OutboxRelay(pool=pool, publisher=pub_b, claim_size=500).drain()
    finally:
        b_done.set()
        thread.join(30)
    assert results["a"].sent == 20
    counts = Counter(archived_event_ids(api))
    assert [i for i in _ids(events) if counts[i] != 1] == []
    assert all(r["published_at"] is not None for r in _rows(db, events).values())


def test_row_whose_detail_no_longer_validates_is_never_sent(
    db: DB, api: RunningEventBridgeApi, relay: OutboxRelay
) -> None:
    event_id = uuid.uuid4()
    db.execute(
        "INSERT INTO outbox (event_id, detail_type, source, detail) "
        "VALUES (%s, 'user.online', 'chatflow.chat', %s)",
        (event_id, psycopg.types.json.Jsonb({"event_id": str(event_id), "version": 1, "user_id": "nope"})),
    )
    result = relay.drain()
    assert result.invalid >= 1
    row = db.execute(
        "SELECT published_at, last_error FROM outbox WHERE event_id = %s", (event_id,)
    ).fetchone()
    assert row is not None
    assert row["published_at"] is None
    assert row["last_error"].startswith("invalid:")
    assert str(event_id) not in archived_event_ids(api)
    db.execute("DELETE FROM outbox WHERE event_id = %s", (event_id,))


# --- flush after commit ----------------------------------------------------------------------


@pytest.fixture
def flusher(relay: OutboxRelay) -> AfterCommitFlusher:
    """The after-commit flush as a function with a bus configured gets it (to the emulator)."""
    return AfterCommitFlusher(lambda: relay, enabled=True)


def test_flush_after_commit_sends_at_once(
    db: DB, api: RunningEventBridgeApi, flusher: AfterCommitFlusher
) -> None:
    events = _events(2)
    _commit(events)
    result = flusher.flush()
    assert result is not None
    assert set(_ids(events)) <= set(archived_event_ids(api))
    assert all(r["published_at"] is not None for r in _rows(db, events).values())


def test_flush_after_commit_never_raises_and_leaves_rows_for_the_sweep(
    db: DB, api: RunningEventBridgeApi, flusher: AfterCommitFlusher
) -> None:
    events = _events(1)
    _commit(events)
    api.bus.faults.set_unavailable(True)
    try:
        result = flusher.flush()
    finally:
        api.bus.faults.clear()
    assert result is not None
    assert result.sent == 0
    row = _rows(db, events)[str(events[0].event_id)]
    assert row["published_at"] is None
    assert row["attempts"] == 1


def test_deferred_flush_runs_once_at_the_outermost_end_even_after_an_error() -> None:
    class Recording:
        def __init__(self) -> None:
            self.limits: list[int] = []

        def run_once(self, limit: int) -> RelayResult:
            self.limits.append(limit)
            return RelayResult()

    recording = Recording()
    flusher = AfterCommitFlusher(lambda: recording, enabled=True)  # type: ignore[arg-type, return-value]
    with flusher.deferred():
        assert flusher.flush(5) is None  # held
        with flusher.deferred():
            flusher.flush(20)
        assert recording.limits == []  # the inner block does not flush
    assert recording.limits == [20]

    def commit_then_fail() -> None:
        with flusher.deferred():
            flusher.flush(7)  # committed...
            raise RuntimeError("...then the after-commit work failed")

    with pytest.raises(RuntimeError):
        commit_then_fail()
    assert recording.limits == [20, 7]  # ...and is still sent
    with flusher.deferred():
        pass
    assert recording.limits == [20, 7]  # nothing asked, nothing sent
    flusher.flush(3)
    assert recording.limits == [20, 7, 3]


def test_flush_is_skipped_locally_without_an_endpoint(db: DB, container: Container) -> None:
    events = _events(1)
    _commit(events)
    assert container.outbox.flush() is None
    assert _rows(db, events)[str(events[0].event_id)]["published_at"] is None
    db.execute("DELETE FROM outbox WHERE event_id = %s", (events[0].event_id,))


def test_retention_purges_only_old_published_rows_and_old_dedupe_records(db: DB) -> None:
    from datetime import timedelta

    from chatflow.adapters.postgres.consumers import purge_processed

    old_sent, old_unsent, new_sent = _events(3)
    _commit([old_sent, old_unsent, new_sent])
    db.execute(
        "UPDATE outbox SET created_at = now() - interval '30 days', "
        "published_at = CASE WHEN event_id = %s THEN now() - interval '30 days' END WHERE event_id = ANY(%s)",
        (old_sent.event_id, [old_sent.event_id, old_unsent.event_id]),
    )
    db.execute("UPDATE outbox SET published_at = now() WHERE event_id = %s", (new_sent.event_id,))
    with writer() as conn:
        assert outbox.purge_published(conn, timedelta(days=7)) >= 1
    assert set(_rows(db, [old_sent, old_unsent, new_sent])) == {
        str(old_unsent.event_id),
        str(new_sent.event_id),
    }
    db.execute("DELETE FROM outbox WHERE event_id = %s", (old_unsent.event_id,))

    stale, fresh = uuid.uuid4(), uuid.uuid4()
    db.execute(
        "INSERT INTO processed_events (consumer, event_id, detail_type, processed_at) VALUES "
        "('test', %s, 'user.online', now() - interval '40 days'), ('test', %s, 'user.online', now())",
        (stale, fresh),
    )
    with writer() as conn:
        assert purge_processed(conn, timedelta(days=30)) >= 1
    kept = db.execute("SELECT event_id FROM processed_events WHERE consumer = 'test'").fetchall()
    assert [r["event_id"] for r in kept] == [fresh]
