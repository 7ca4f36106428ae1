"""EventBridge publisher (EventPublisher port) against the local EventBridge emulator over HTTP,
through the functions' lean client (``make_events_client``) and through a botocore client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chatflow.adapters.aws_http import AwsCredentials
from chatflow.adapters.eventbridge import EventBridgePublisher, PublishFailed, make_events_client
from chatflow.events.schemas import ConnectionOpened, InvalidEvent, UserOffline, UserOnline
from chatflow.settings import Settings
from local_stack.eventbridge.http_api import RunningEventBridgeApi
from local_stack.sigv4 import DEFAULT_KEY_PAIR
from tests.support.events import archived_event_ids, emulator, events_client


@pytest.fixture
def api() -> Iterator[RunningEventBridgeApi]:
    with emulator() as running:
        yield running


@pytest.fixture(params=["lean", "botocore"])
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def lean_client(api: RunningEventBridgeApi) -> Any:
    """What the functions use: ``make_events_client`` with the local key pair."""
    settings = Settings(events_endpoint_url=api.endpoint_url, aws_region="us-east-1")
    return make_events_client(settings, credentials=lambda: AwsCredentials(*DEFAULT_KEY_PAIR))


@pytest.fixture
def publisher_of(api: RunningEventBridgeApi, client_kind: str) -> Any:
    def make(api: RunningEventBridgeApi, **kw: Any) -> EventBridgePublisher:
        return _makepublisher_of(api, client_kind, **kw)

    return make


def _makepublisher_of(api: RunningEventBridgeApi, kind: str, **kw: Any) -> EventBridgePublisher:
    return EventBridgePublisher(
        client=lean_client(api) if kind == "lean" else events_client(api.endpoint_url),
        bus_name="chatflow",
        source="chatflow.chat",
        sleep=lambda _: None,
        **kw,
    )


def test_publish_puts_valid_events_with_source_detail_type_and_time(
    api: RunningEventBridgeApi, publisher_of: Any
) -> None:
    event = ConnectionOpened(user_id=uuid.uuid4(), connection_id="abc=")
    publisher_of(api).publish([event])
    (archived,) = [e for e in api.bus.archived() if e["detail"]["event_id"] == str(event.event_id)]
    assert archived["source"] == "chatflow.chat"
    assert archived["detail-type"] == "connection.opened"
    assert archived["detail"] == event.detail()
    assert archived["time"].startswith(event.occurred_at.strftime("%Y-%m-%dT%H:%M"))


def test_one_invalid_event_means_nothing_is_sent(api: RunningEventBridgeApi, publisher_of: Any) -> None:
    good = UserOnline(user_id=uuid.uuid4())
    bad = UserOffline.model_construct(event_id=uuid.uuid4(), user_id="someone", version=1)
    publisher = publisher_of(api)
    with pytest.raises(InvalidEvent):
        publisher.publish([good, bad])
    assert api.api.requests == 0
    assert archived_event_ids(api) == []


def test_bus_down_raises_publish_failed_after_retries(api: RunningEventBridgeApi, publisher_of: Any) -> None:
    api.bus.faults.set_unavailable(True)
    events = [UserOnline(user_id=uuid.uuid4()) for _ in range(12)]
    with pytest.raises(PublishFailed) as caught:
        publisher_of(api, max_attempts=3).publish(events)
    assert {f.event_id for f in caught.value.failed} == {e.event_id for e in events}
    assert caught.value.status == 503
    assert api.api.requests == 2 * 3  # two batches (10 + 2), three attempts each


def test_partial_failure_retries_only_the_rejected_entries(
    api: RunningEventBridgeApi, publisher_of: Any
) -> None:
    events = [UserOnline(user_id=uuid.uuid4()) for _ in range(5)]
    api.bus.faults.fail_entries(2)
    publisher_of(api).publish(events)
    assert sorted(archived_event_ids(api)) == sorted(str(e.event_id) for e in events)
    assert api.api.requests == 2


def test_client_is_created_lazily(api: RunningEventBridgeApi) -> None:
    made: list[int] = []

    def factory() -> Any:
        made.append(1)
        return events_client(api.endpoint_url)

    publisher = EventBridgePublisher(
        client_factory=factory, bus_name="chatflow", source="chatflow.chat", sleep=lambda _: None
    )
    assert made == []
    publisher.publish([UserOnline(user_id=uuid.uuid4())])
    publisher.publish([UserOnline(user_id=uuid.uuid4())])
    assert made == [1]


def test_publish_of_nothing_sends_nothing(api: RunningEventBridgeApi, publisher_of: Any) -> None:
    publisher_of(api).publish([])
    assert api.api.requests == 0


def test_batches_also_respect_the_256_kb_request_limit(api: RunningEventBridgeApi) -> None:
    from datetime import UTC, datetime

    from chatflow.events.schemas import MessageCreated

    counts: list[int] = []
    client = events_client(api.endpoint_url)
    client.meta.events.register(
        "provide-client-params.events.PutEvents", lambda params, **_: counts.append(len(params["Entries"]))
    )
    publisher = EventBridgePublisher(
        client=client, bus_name="chatflow", source="chatflow.chat", sleep=lambda _: None
    )
    body = "日本語のメッセージ" * 1700  # ~15,300 characters, ~46 KB of UTF-8
    events = [
        MessageCreated(
            room_id=uuid.uuid4(),
            seq=i + 1,
            message_id=uuid.uuid4(),
            sender_id=uuid.uuid4(),
            sender_handle="kei",
            client_message_id=f"c{i}",
            body=body,
            created_at=datetime.now(UTC),
        )
        for i in range(10)
    ]
    publisher.publish(events)
    assert sorted(archived_event_ids(api)) == sorted(str(e.event_id) for e in events)
    assert len(counts) >= 2
    assert max(counts) <= 5
    assert api.bus.archived()[0]["detail"]["body"] == body  # non-ASCII survives intact
