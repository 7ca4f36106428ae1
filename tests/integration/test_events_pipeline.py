"""The event pipeline end to end, locally: outbox -> relay -> EventBridge emulator (rules from
infra/catalog.py, retry policy, dead letters, archive, replay) -> the notifications and analytics
functions invoked as Lambda does -> Postgres. Real Postgres and Redis; the SNS client and the SQS
is a recording stand-in (SNS cannot run here); the dead-letter queues are the local stack's SQS.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any, cast
from uuid import UUID

import psycopg
import pytest

from chatflow.adapters.eventbridge import EventBridgePublisher
from chatflow.adapters.outbox_relay import OutboxRelay
from chatflow.adapters.postgres import outbox
from chatflow.adapters.sns_delivery import SnsNotificationChannel
from chatflow.container import Container
from chatflow.events.schemas import DomainEvent, MemberLeft, MessageCreated, UserOnline
from chatflow_dev import events as tools
from infra.catalog import async_failure_queue_name, function
from local_stack.eventbridge.http_api import RunningEventBridgeApi
from tests.support.apigw import lambda_context
from tests.support.events import NAME_PREFIX, emulator, events_client, insert_room, insert_user, sqs_client
from tests.support.lambdas import load_handler_module, reset_handlers

DB = psycopg.Connection[dict[str, Any]]
SOURCE = "chatflow.chat"


def _database_url() -> str:
    from chatflow.settings import get_settings

    return get_settings().database_url


class RecordingSns:
    """Stand-in for the boto3 SNS client: records publishes, fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.failing = False
        self.published: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        if self.failing:
            raise ConnectionError("sns unavailable")
        self.published.append(kwargs)
        return {"MessageId": str(uuid.uuid4())}


@pytest.fixture
def sns(chatflow_env: dict[str, str]) -> Iterator[RecordingSns]:
    recorder = RecordingSns()
    channel = SnsNotificationChannel(
        "arn:aws:sns:us-east-1:000000000000:chatflow", client=cast(Any, recorder)
    )
    reset_handlers()  # a fresh notifications function, its channel replaced by the recorder
    load_handler_module("notifications").container.override(notification_channel=channel)
    yield recorder
    reset_handlers()


@pytest.fixture
def api(sns: RecordingSns) -> Iterator[RunningEventBridgeApi]:
    # Loaded before the bus's worker threads start (importing concurrently would race).
    modules: dict[str, ModuleType] = {fn: load_handler_module(fn) for fn in ("notifications", "analytics")}

    def invoke(function: str, event: dict[str, Any]) -> Any:
        return modules[function].handler(event, lambda_context(f"chatflow-{function}"))

    with emulator(invoke) as running:
        yield running


@pytest.fixture
def relay(api: RunningEventBridgeApi, container: Container) -> OutboxRelay:
    publisher = EventBridgePublisher(
        client=events_client(api.endpoint_url), bus_name="chatflow", source=SOURCE, sleep=lambda _: None
    )
    return OutboxRelay(pool=container.postgres.writer, publisher=publisher)


def _commit_and_relay(relay: OutboxRelay, api: RunningEventBridgeApi, events: list[DomainEvent]) -> None:
    with psycopg.connect(_database_url(), autocommit=True) as conn, conn.transaction():
        for event in events:
            outbox.enqueue(conn, event, source=SOURCE)
    relay.drain()
    assert api.bus.wait_idle(30)


def _message(room: UUID, sender: UUID, seq: int, body: str = "hello") -> MessageCreated:
    now = datetime.now(UTC)
    return MessageCreated(
        room_id=room,
        seq=seq,
        message_id=uuid.uuid4(),
        sender_id=sender,
        sender_handle="sam",
        client_message_id=f"c{seq}-{uuid.uuid4().hex[:6]}",
        body=body,
        created_at=now,
    )


def _deliveries(api: RunningEventBridgeApi, event: DomainEvent) -> set[tuple[str, str]]:
    return {(rule, target) for rule, target, _ in _delivered_of(api, event)}


def _delivered_of(api: RunningEventBridgeApi, event: DomainEvent) -> list[tuple[str, str, str]]:
    ids = {e["id"] for e in api.bus.archived() if e["detail"]["event_id"] == str(event.event_id)}
    return [d for d in _all_delivered(api) if d[2] in ids]


def _all_delivered(api: RunningEventBridgeApi) -> list[tuple[str, str, str]]:
    delivered: Any = api.bus.delivered
    return list(delivered() if callable(delivered) else delivered)


def _unread(db: DB, room: UUID, user: UUID) -> int | None:
    row = db.execute(
        "SELECT unread_messages FROM notification_counters WHERE room_id = %s AND user_id = %s", (room, user)
    ).fetchone()
    return None if row is None else int(row["unread_messages"])


def _room_messages(db: DB, room: UUID) -> int:
    row = db.execute(
        "SELECT coalesce(sum(messages), 0) AS n FROM analytics_room_hourly WHERE room_id = %s", (room,)
    )
    return int(row.fetchone()["n"])  # type: ignore[index]


def test_events_are_routed_by_the_catalog_patterns(
    db: DB, api: RunningEventBridgeApi, relay: OutboxRelay
) -> None:
    sender, reader = insert_user(db), insert_user(db)
    room = insert_room(db, sender, [reader])
    message = _message(room, sender, 1)
    left = MemberLeft(room_id=room, user_id=reader)
    online = UserOnline(user_id=sender)
    _commit_and_relay(relay, api, [message, left, online])

    assert _deliveries(api, message) == {
        ("notify-on-message-and-join", "notifications"),
        ("analytics-all-chat-events", "analytics"),
    }
    assert _deliveries(api, left) == {("analytics-all-chat-events", "analytics")}
    assert _deliveries(api, online) == {("analytics-all-chat-events", "analytics")}
    assert _unread(db, room, reader) == 1
    assert _room_messages(db, room) == 1
    assert api.bus.dead_letters() == []


def test_a_failing_consumer_is_retried_by_lambda_then_redriven_from_its_on_failure_queue(
    db: DB, api: RunningEventBridgeApi, relay: OutboxRelay, sns: RecordingSns
) -> None:
    """As in AWS: EventBridge's delivery (the hand-off to Lambda) succeeds; the function's own
    async config retries it (catalog AsyncInvoke: 2 retries) and then records it in the
    function's on-failure queue -- not the rule's DLQ, which stays empty."""
    sender, peer = insert_user(db), insert_user(db)
    room = insert_room(db, sender, [peer], kind="dm")
    message = _message(room, sender, 1, "are you there?")
    sns.failing = True
    _commit_and_relay(relay, api, [message])

    assert api.bus.dead_letters() == []  # delivery to Lambda worked: nothing for the rule's DLQ
    assert ("notify-on-message-and-join", "notifications") in _deliveries(api, message)
    queue = async_failure_queue_name(NAME_PREFIX, "notifications")
    records = [json.loads(m.body) for m in api.bus.queues.peek(queue)]
    (record,) = [r for r in records if r["requestPayload"]["detail"]["event_id"] == str(message.event_id)]
    retries = function("notifications").async_invoke
    assert retries is not None
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == retries.max_retry_attempts + 1
    assert "not delivered" in record["responsePayload"]["errorMessage"]
    # The other target of the same event was not held back, and the effect happened once.
    assert ("analytics-all-chat-events", "analytics") in _deliveries(api, message)
    assert _unread(db, room, peer) == 1
    assert sns.published == []

    sns.failing = False
    sqs = sqs_client(api.endpoint_url)
    result = tools.redrive_sqs(
        sqs,
        events_client(api.endpoint_url),
        sqs.get_queue_url(QueueName=queue)["QueueUrl"],
        bus_name="chatflow",
        wait_s=0,
    )
    assert (result.redriven, result.invalid, result.failed) == (len(records), 0, 0)
    assert api.bus.wait_idle(30)
    assert api.bus.queues.peek(queue) == []
    assert len([p for p in sns.published if str(peer) in json.dumps(p)]) == 1
    assert _unread(db, room, peer) == 1  # redrive did not count again


def test_archive_replay_does_not_double_apply(db: DB, api: RunningEventBridgeApi, relay: OutboxRelay) -> None:
    sender, reader = insert_user(db), insert_user(db)
    room = insert_room(db, sender, [reader])
    start = datetime.now(UTC) - timedelta(seconds=1)
    events: list[DomainEvent] = [_message(room, sender, seq) for seq in (1, 2, 3)]
    _commit_and_relay(relay, api, events)
    assert _unread(db, room, reader) == 3
    assert _room_messages(db, room) == 3
    before = len(_all_delivered(api))

    time.sleep(0.01)  # the replay window must end after the archived events, and not in the future
    replay = tools.start_replay(
        events_client(api.endpoint_url),
        archive_arn=api.bus.archive_arn,
        bus_arn=api.bus.arn,
        start=start,
        end=datetime.now(UTC),
        poll_s=0.02,
        wait_timeout_s=30,
    )
    assert replay["State"] == "COMPLETED"
    assert api.bus.wait_idle(30)
    assert len(_all_delivered(api)) >= before + 6  # every event went to both consumers again
    assert _unread(db, room, reader) == 3
    assert _room_messages(db, room) == 3


def test_sqs_dead_letters_are_put_back_on_the_bus_and_only_then_deleted(
    db: DB, api: RunningEventBridgeApi
) -> None:
    sender, reader = insert_user(db), insert_user(db)
    room = insert_room(db, sender, [reader])
    message = _message(room, sender, 1)
    left = MemberLeft(room_id=room, user_id=reader)
    dead = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "message.created",
        "source": "chatflow.chat",
        "account": "000000000000",
        "time": "2026-11-25T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": message.detail(),
    }
    garbage = json.dumps(
        {"detail-type": "message.created", "source": "chatflow.chat", "detail": {"version": 1}}
    )
    lambda_failure = {
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": {**dead, "detail": left.detail(), "detail-type": "member.left"},
        "responsePayload": {"errorMessage": "boom"},
    }
    sqs = sqs_client(api.endpoint_url)
    queue_url = sqs.create_queue(QueueName=f"notify-dlq-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    for body in (json.dumps(dead), garbage, json.dumps(lambda_failure)):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    result = tools.redrive_sqs(sqs, events_client(api.endpoint_url), queue_url, bus_name="chatflow", wait_s=0)
    assert result.to_dict() | {"errors": []} == {
        "received": 3,
        "redriven": 2,
        "invalid": 1,
        "failed": 0,
        "errors": [],
    }
    # The invalid one stays in the DLQ for a human (received, so invisible for a while).
    assert [m.body for m in api.bus.queues.peek(queue_url)] == [garbage]
    assert api.bus.wait_idle(30)
    assert _unread(db, room, reader) == 1
    assert str(left.event_id) in {e["detail"]["event_id"] for e in api.bus.archived()}


@pytest.fixture
def live_bus(api: RunningEventBridgeApi, monkeypatch: pytest.MonkeyPatch) -> Iterator[Container]:
    """A container whose writers' after-commit flush goes to the emulator (as the local gateway
    configures it); the functions cold-start with the same setting."""
    from chatflow.settings import get_settings
    from tests.support.settings import reset_settings_cache

    monkeypatch.setenv("EVENTS_ENDPOINT_URL", api.endpoint_url)
    reset_settings_cache()
    container = Container(get_settings())
    yield container
    container.close()
    monkeypatch.delenv("EVENTS_ENDPOINT_URL")
    reset_handlers()


def test_a_real_send_reaches_the_consumers_and_survives_a_bus_outage(
    db: DB, api: RunningEventBridgeApi, live_bus: Container
) -> None:
    """ROOMS' own write path (message + outbox row in one transaction, flush after commit)."""
    from tests.support.rooms import insert_user as insert_identity

    rooms, messages = live_bus.rooms, live_bus.messages
    owner = insert_identity(db)
    reader = insert_identity(db)
    room_id = rooms.create_channel(owner, "public", f"ev-{uuid.uuid4().hex[:8]}").room.id
    rooms.join(reader, room_id)
    _, created = messages.send(owner, room_id, "c-1", f"hi @{reader.handle}")
    assert created
    assert api.bus.wait_idle(30)
    row = db.execute(
        "SELECT unread_messages, unread_mentions FROM notification_counters "
        "WHERE room_id = %s AND user_id = %s",
        (room_id, reader.user_id),
    ).fetchone()
    assert row == {"unread_messages": 1, "unread_mentions": 1}
    assert _room_messages(db, room_id) == 1

    # EventBridge down while a message is sent: the send succeeds, the event waits in the outbox.
    api.bus.faults.set_unavailable(True)
    second, _ = messages.send(owner, room_id, "c-2", "anyone?")
    pending = db.execute(
        "SELECT event_id FROM outbox WHERE detail_type = 'message.created' AND published_at IS NULL "
        "AND detail->>'message_id' = %s",
        (str(second.id),),
    ).fetchone()
    assert pending is not None
    api.bus.faults.clear()
    db.execute("UPDATE outbox SET next_attempt_at = now() WHERE event_id = %s", (pending["event_id"],))
    reset_handlers()  # the sweep function cold-starts with the emulator's endpoint
    sweep = load_handler_module("outbox_relay").handler({}, lambda_context("chatflow-outbox_relay"))
    assert sweep["sent"] >= 1
    assert api.bus.wait_idle(30)
    assert _unread(db, room_id, reader.user_id) == 2
    assert _room_messages(db, room_id) == 2
