"""Notifications consumer: real Postgres (counters, notifications, processed events) and real
Redis (presence from REALTIME's connection registry); the handler invoked as Lambda does with
EventBridge envelopes. The SNS client is a recording stand-in (no SNS can run here), and says so.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, cast
from uuid import UUID

import psycopg
import pytest

from chatflow.adapters.sns_delivery import SnsNotificationChannel
from chatflow.events.schemas import MemberJoined, MemberLeft, MessageCreated, MessageDeleted, MessageEdited
from tests.support.apigw import lambda_context
from tests.support.events import envelope, insert_room, insert_user
from tests.support.lambdas import load_handler_module, reset_handlers

DB = psycopg.Connection[dict[str, Any]]


class RecordingSns:
    """Stand-in for the boto3 SNS client (AWS SNS cannot run here): records publish calls."""

    def __init__(self, fail: int = 0) -> None:
        self.published: list[dict[str, Any]] = []
        self.fail = fail

    def publish(self, **kwargs: Any) -> dict[str, str]:
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("sns endpoint unreachable")
        self.published.append(kwargs)
        return {"MessageId": str(uuid.uuid4())}


@pytest.fixture
def fn(chatflow_env: dict[str, str]) -> Iterator[ModuleType]:
    """A cold-started notifications function (its container's channel may be replaced)."""
    reset_handlers()
    yield load_handler_module("notifications")
    reset_handlers()


def _use_channel(module: ModuleType, channel: SnsNotificationChannel) -> None:
    module.container.override(notification_channel=channel)


def _invoke(module: ModuleType, raw: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = module.handler(raw, lambda_context("chatflow-notifications"))
    return result


def _message(
    room: UUID, sender: UUID, handle: str, seq: int, body: str, mentions: list[str]
) -> MessageCreated:
    now = datetime.now(UTC)
    return MessageCreated(
        room_id=room,
        seq=seq,
        message_id=uuid.uuid4(),
        sender_id=sender,
        sender_handle=handle,
        client_message_id=f"c{seq}",
        body=body,
        mentions=mentions,
        created_at=now,
    )


def _counters(db: DB, room: UUID) -> dict[UUID, tuple[int, int]]:
    rows = db.execute(
        "SELECT user_id, unread_messages, unread_mentions FROM notification_counters WHERE room_id = %s",
        (room,),
    ).fetchall()
    return {r["user_id"]: (r["unread_messages"], r["unread_mentions"]) for r in rows}


def _notifications(db: DB, user: UUID) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT kind, room_id, seq, actor_handle, preview, delivery_status, delivery_attempts "
        "FROM notifications WHERE user_id = %s ORDER BY id",
        (user,),
    ).fetchall()


def test_offline_members_get_counters_and_mentions_online_ones_and_sender_do_not(
    db: DB, fn: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = insert_user(db, "sam_" + uuid.uuid4().hex[:6])
    offline = insert_user(db, "olga_" + uuid.uuid4().hex[:6])
    mentioned = insert_user(db, "mia_" + uuid.uuid4().hex[:6])
    online = insert_user(db, "otto_" + uuid.uuid4().hex[:6])
    banned = insert_user(db, status="banned")
    room = insert_room(db, sender, [offline, mentioned, online, banned])
    fn.container.connection_registry.register(online, "conn-online-1")
    mia = db.execute("SELECT handle FROM users WHERE id = %s", (mentioned,)).fetchone()
    otto = db.execute("SELECT handle FROM users WHERE id = %s", (online,)).fetchone()
    assert mia is not None
    assert otto is not None
    sns = RecordingSns()
    _use_channel(
        fn,
        SnsNotificationChannel("arn:aws:sns:us-east-1:000000000000:chatflow", client=cast(Any, sns)),
    )

    event = _message(room, sender, "sam", 7, "hello @MIA and @otto", [mia["handle"].upper(), otto["handle"]])
    result = _invoke(fn, envelope(event))

    assert result["duplicate"] is False
    assert _counters(db, room) == {offline: (1, 0), mentioned: (1, 1)}
    mentions = _notifications(db, mentioned)
    assert [(n["kind"], n["seq"], n["actor_handle"], n["delivery_status"]) for n in mentions] == [
        ("mention", 7, "sam", "delivered")
    ]
    assert _notifications(db, online) == []
    assert _notifications(db, offline) == []
    assert len(sns.published) == 1
    published = sns.published[0]
    assert published["MessageAttributes"]["user_id"]["StringValue"] == str(mentioned)
    assert '"kind":"mention"' in published["Message"]


def test_redelivered_and_replayed_events_do_not_notify_twice(
    db: DB, fn: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = insert_user(db)
    peer = insert_user(db, "pat_" + uuid.uuid4().hex[:6])
    room = insert_room(db, sender, [peer], kind="dm")
    sns = RecordingSns()
    _use_channel(fn, SnsNotificationChannel("arn:aws:sns:us-east-1:000000000000:t", client=cast(Any, sns)))
    event = _message(room, sender, "sam", 1, "  psst\n  are you there?  ", [])

    first = _invoke(fn, envelope(event))
    again = _invoke(fn, envelope(event))  # EventBridge retry: new envelope id, same event id
    replayed = _invoke(fn, envelope(event, replay_name="replay-1"))

    assert first["duplicate"] is False
    assert again["duplicate"] is True
    assert replayed["duplicate"] is True
    assert _counters(db, room) == {peer: (1, 0)}
    notes = _notifications(db, peer)
    assert [(n["kind"], n["preview"]) for n in notes] == [("direct_message", "psst are you there?")]
    assert len(sns.published) == 1


def test_failed_hand_off_raises_and_the_retry_only_delivers(
    db: DB, fn: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = insert_user(db)
    peer = insert_user(db)
    room = insert_room(db, sender, [peer], kind="dm")
    sns = RecordingSns(fail=1)
    _use_channel(fn, SnsNotificationChannel("arn:aws:sns:us-east-1:000000000000:t", client=cast(Any, sns)))
    event = _message(room, sender, "sam", 3, "hi", [])

    with pytest.raises(Exception, match="not delivered"):
        _invoke(fn, envelope(event))
    pending = _notifications(db, peer)
    assert [(n["delivery_status"], n["delivery_attempts"]) for n in pending] == [("pending", 1)]

    retried = _invoke(fn, envelope(event))
    assert retried["duplicate"] is True
    assert retried["delivered"] == 1
    assert _counters(db, room) == {peer: (1, 0)}  # counted once
    assert [(n["delivery_status"], n["delivery_attempts"]) for n in _notifications(db, peer)] == [
        ("delivered", 2)
    ]
    assert len(sns.published) == 1


def test_unconfigured_channel_delivers_nothing_and_says_so(
    db: DB, fn: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sender = insert_user(db)
    peer = insert_user(db)
    room = insert_room(db, sender, [peer], kind="dm")
    _use_channel(fn, SnsNotificationChannel(None))
    caplog.set_level(logging.INFO, logger="chatflow.adapters.sns_delivery")
    result = _invoke(fn, envelope(_message(room, sender, "sam", 1, "hi", [])))
    assert result["skipped"] == 1
    assert [n["delivery_status"] for n in _notifications(db, peer)] == ["skipped"]
    assert any("not configured" in r.getMessage() for r in caplog.records)


def test_member_added_by_someone_else_is_notified_self_join_is_not(
    db: DB, fn: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = insert_user(db, "owen_" + uuid.uuid4().hex[:6])
    added = insert_user(db)
    joiner = insert_user(db)
    room = insert_room(db, owner, [added, joiner])
    _use_channel(fn, SnsNotificationChannel(None))
    _invoke(fn, envelope(MemberJoined(room_id=room, user_id=added, added_by=owner)))
    _invoke(fn, envelope(MemberJoined(room_id=room, user_id=joiner, added_by=None)))
    notes = _notifications(db, added)
    assert [n["kind"] for n in notes] == ["added_to_room"]
    assert notes[0]["actor_handle"].startswith("owen_")
    assert notes[0]["preview"].startswith("owen_")
    assert _notifications(db, joiner) == []


def _store(db: DB, event: MessageCreated) -> None:
    """The messages row ``event`` describes (as MESSAGES wrote it before emitting the event)."""
    db.execute(
        """INSERT INTO messages (room_id, seq, id, sender_id, client_message_id, body, created_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (
            event.room_id,
            event.seq,
            event.message_id,
            event.sender_id,
            event.client_message_id,
            event.body,
            event.created_at,
        ),
    )


def _dm(db: DB) -> tuple[UUID, UUID, UUID]:
    sender = insert_user(db, "sam_" + uuid.uuid4().hex[:6])
    peer = insert_user(db, "pia_" + uuid.uuid4().hex[:6])
    return sender, peer, insert_room(db, sender, [peer], kind="dm")


def test_edits_rewrite_and_deletes_scrub_the_previews(db: DB, fn: ModuleType) -> None:
    """Deleted means deleted: the recipient's GET /notifications stops quoting the text."""
    sender, peer, room = _dm(db)
    _use_channel(fn, SnsNotificationChannel(None))
    created = _message(room, sender, "sam", 1, "meet at   the old\nplace", [])
    _store(db, created)
    _invoke(fn, envelope(created))
    assert [n["preview"] for n in _notifications(db, peer)] == ["meet at the old place"]

    now = datetime.now(UTC)
    db.execute(
        "UPDATE messages SET body = 'meet at the new place', edited_at = %s WHERE id = %s",
        (now, created.message_id),
    )
    edited = MessageEdited(
        room_id=room,
        seq=1,
        message_id=created.message_id,
        editor_id=sender,
        body="meet at the new place",
        edited_at=now,
    )
    result = _invoke(fn, envelope(edited))
    assert result["previewsUpdated"] == 1
    assert [n["preview"] for n in _notifications(db, peer)] == ["meet at the new place"]

    db.execute("UPDATE messages SET body = NULL, deleted_at = %s WHERE id = %s", (now, created.message_id))
    deleted = MessageDeleted(
        room_id=room, seq=1, message_id=created.message_id, deleted_by=sender, deleted_at=now
    )
    assert _invoke(fn, envelope(deleted))["previewsUpdated"] == 1
    notes = _notifications(db, peer)
    assert [(n["kind"], n["seq"], n["preview"]) for n in notes] == [("direct_message", 1, "")]
    # A late (or replayed) edit event cannot bring the text back: the message is deleted now.
    assert _invoke(fn, envelope(edited))["previewsUpdated"] == 0
    assert [n["preview"] for n in _notifications(db, peer)] == [""]
    assert _invoke(fn, envelope(deleted))["duplicate"] is True


def test_a_message_created_event_delivered_after_the_delete_stores_no_text(db: DB, fn: ModuleType) -> None:
    sender, peer, room = _dm(db)
    _use_channel(fn, SnsNotificationChannel(None))
    created = _message(room, sender, "sam", 1, "the password is hunter2", [])
    _store(db, created)
    db.execute("UPDATE messages SET body = NULL, deleted_at = now() WHERE id = %s", (created.message_id,))
    _invoke(fn, envelope(created))  # EventBridge does not order events: created arrives last
    notes = _notifications(db, peer)
    assert [(n["kind"], n["preview"]) for n in notes] == [("direct_message", "")]


def test_a_delete_committed_between_reading_the_text_and_storing_the_notification_wins(
    db: DB, fn: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender, peer, room = _dm(db)
    _use_channel(fn, SnsNotificationChannel(None))
    created = _message(room, sender, "sam", 1, "delete me quickly", [])
    _store(db, created)
    repo = fn.container.notification_repository
    read = repo.current_body

    def read_then_delete(message_id: UUID) -> str | None:
        text: str | None = read(message_id)  # the consumer saw the text...
        db.execute("UPDATE messages SET body = NULL, deleted_at = now() WHERE id = %s", (message_id,))
        return text  # ...and the delete commits before its insert

    monkeypatch.setattr(repo, "current_body", read_then_delete)
    _invoke(fn, envelope(created))
    assert [n["preview"] for n in _notifications(db, peer)] == [""]


def test_invalid_or_foreign_events_are_refused(fn: ModuleType) -> None:
    from chatflow.events.schemas import InvalidEvent

    good = envelope(MemberLeft(room_id=uuid.uuid4(), user_id=uuid.uuid4()))
    with pytest.raises(InvalidEvent, match="unexpected source"):
        _invoke(fn, good | {"source": "someone.else"})
    with pytest.raises(InvalidEvent, match="room_id"):
        _invoke(fn, good | {"detail": {**good["detail"], "room_id": "x"}})
    with pytest.raises(InvalidEvent):
        _invoke(fn, {"hello": "world"})


def test_concurrent_deliveries_apply_once_and_concurrent_events_all_count(
    db: DB, fn: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    sender = insert_user(db)
    members = [insert_user(db) for _ in range(5)]
    room = insert_room(db, sender, members)
    # Enough pool connections for the threads (the Lambda-sized default is 2): a cold start.
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "8")
    reset_handlers()
    fn = load_handler_module("notifications")
    _use_channel(fn, SnsNotificationChannel(None))
    try:
        same = _message(room, sender, "sam", 1, "once", [])
        barrier = threading.Barrier(4)

        def deliver_same(_: int) -> bool:
            barrier.wait(10)
            return bool(_invoke(fn, envelope(same))["duplicate"])

        with ThreadPoolExecutor(4) as pool:
            duplicates = list(pool.map(deliver_same, range(4)))
        assert sorted(duplicates) == [False, True, True, True]

        others = [_message(room, sender, "sam", seq, "more", []) for seq in range(2, 22)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda e: _invoke(fn, envelope(e)), others))
        assert _counters(db, room) == dict.fromkeys(members, (21, 0))
    finally:
        monkeypatch.delenv("DB_POOL_MAX_SIZE")
        reset_handlers()


def test_a_page_shows_a_message_s_counter_and_its_notification_together(
    db: DB, fn: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /notifications reads counters, then items: a delivery committing between the two reads
    must not show up in one and not the other (both reads share one snapshot)."""
    from chatflow.adapters.postgres import notifications as adapter

    sender, peer, room = _dm(db)
    _use_channel(fn, SnsNotificationChannel(None))
    first = _message(room, sender, "sam", 1, "one", [])
    _store(db, first)
    _invoke(fn, envelope(first))
    other_sender = insert_user(db, "oli_" + uuid.uuid4().hex[:6])
    other_room = insert_room(db, other_sender, [peer], kind="dm")
    late = _message(other_room, other_sender, "oli", 1, "two", [])
    _store(db, late)
    from chatflow.domain.notification_models import RoomUnread

    delivered: list[bool] = []

    def room_unread_then_deliver(**row: Any) -> Any:
        if not delivered:  # between the counters' read and the items' read
            delivered.append(True)
            with db.transaction():  # what the consumer writes for one message, in one transaction
                db.execute(
                    """INSERT INTO notification_counters (user_id, room_id, unread_messages,
                           unread_mentions, last_seq, last_message_at, last_sender_handle)
                       VALUES (%s, %s, 1, 0, 1, now(), 'oli')""",
                    (peer, other_room),
                )
                db.execute(
                    """INSERT INTO notifications (user_id, kind, room_id, event_id, message_id, seq,
                                                  actor_id, actor_handle, preview)
                       VALUES (%s, 'direct_message', %s, %s, %s, 1, %s, 'oli', 'two')""",
                    (peer, other_room, uuid.uuid4(), late.message_id, other_sender),
                )
        return RoomUnread(**row)

    monkeypatch.setattr(adapter, "RoomUnread", room_unread_then_deliver)
    rooms, items = fn.container.notification_repository.list_for_user(
        peer, unread_only=False, before=None, limit=50
    )
    assert delivered
    assert {r.room_id for r in rooms} == {n.room_id for n in items} == {room}
    # The next page sees both.
    rooms, items = fn.container.notification_repository.list_for_user(
        peer, unread_only=False, before=None, limit=50
    )
    assert {r.room_id for r in rooms} == {n.room_id for n in items} == {room, other_room}
