"""The local EventBridge endpoint through the real boto3 ``events`` client (AWS JSON 1.1)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from infra.catalog import EVENT_RULES, EVENT_SOURCE, RetryPolicy
from local_stack.eventbridge import Backoff, LocalEventBus, RunningEventBridgeApi, running_eventbridge_api
from tests.support.events import TargetRecorder as Recorder
from tests.support.events import events_client, sqs_client

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def api(recorder: Recorder) -> Iterator[RunningEventBridgeApi]:
    bus = LocalEventBus.from_catalog(
        recorder, name="chatflow", region="us-east-1", backoff=Backoff(base_s=0.001)
    )
    with running_eventbridge_api(bus) as running:
        yield running


@pytest.fixture
def client(api: RunningEventBridgeApi) -> EventBridgeClient:
    return boto3.client(
        "events",
        endpoint_url=api.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # the local key pair: the endpoint verifies SigV4
        config=Config(retries={"mode": "standard", "max_attempts": 2}),
    )


def test_put_events_reaches_the_rule_targets(
    api: RunningEventBridgeApi, client: EventBridgeClient, recorder: Recorder
) -> None:
    out = client.put_events(
        Entries=[
            {
                "Source": EVENT_SOURCE,
                "DetailType": "message.created",
                "Detail": json.dumps({"room_id": "r", "seq": 7}),
                "EventBusName": "chatflow",
            }
        ]
    )
    assert out["FailedEntryCount"] == 0
    event_id = out["Entries"][0]["EventId"]
    assert api.bus.wait_idle()
    (event,) = recorder.events_for("notifications")
    assert event["id"] == event_id
    assert event["detail"] == {"room_id": "r", "seq": 7}


def test_put_events_partial_failure(client: EventBridgeClient, api: RunningEventBridgeApi) -> None:
    out = client.put_events(
        Entries=[
            {"Source": EVENT_SOURCE, "DetailType": "user.online", "Detail": "{}"},
            {"Source": EVENT_SOURCE, "DetailType": "user.online", "Detail": "{not json"},
            {"Source": EVENT_SOURCE, "DetailType": "user.online", "Detail": "{}", "EventBusName": "nope"},
        ]
    )
    assert out["FailedEntryCount"] == 2
    assert "EventId" in out["Entries"][0]
    assert out["Entries"][1]["ErrorCode"] == "MalformedDetail"
    assert out["Entries"][2]["ErrorCode"] == "ResourceNotFoundException"


def test_oversize_and_too_many_entries_are_validation_errors(client: EventBridgeClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.put_events(
            Entries=[
                {"Source": EVENT_SOURCE, "DetailType": "x", "Detail": json.dumps({"b": "x" * (256 * 1024)})}
            ]
        )
    assert excinfo.value.response["Error"]["Code"] == "ValidationException"
    assert "over the limit" in excinfo.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as excinfo:
        client.put_events(Entries=[{"Source": EVENT_SOURCE, "DetailType": "x", "Detail": "{}"}] * 11)
    assert excinfo.value.response["Error"]["Code"] == "ValidationException"


def test_injected_5xx_and_partial_failures(client: EventBridgeClient, api: RunningEventBridgeApi) -> None:
    api.bus.faults.set_unavailable(True)
    with pytest.raises(ClientError) as excinfo:
        client.put_events(Entries=[{"Source": EVENT_SOURCE, "DetailType": "x", "Detail": "{}"}])
    assert excinfo.value.response["Error"]["Code"] == "InternalException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert api.bus.faults.failed_requests >= 2  # botocore retried the 5xx itself
    api.bus.faults.set_unavailable(False)

    api.bus.faults.fail_entries(1, error_code="InternalFailure")
    out = client.put_events(
        Entries=[
            {"Source": EVENT_SOURCE, "DetailType": "x", "Detail": json.dumps({"n": n})} for n in range(3)
        ]
    )
    assert out["FailedEntryCount"] == 1
    assert out["Entries"][0]["ErrorCode"] == "InternalFailure"
    assert [json.loads(json.dumps(e["detail"]))["n"] for e in api.bus.archived()] == [1, 2]


def test_rules_are_listed_and_described(client: EventBridgeClient) -> None:
    rules = client.list_rules(EventBusName="chatflow")["Rules"]
    assert sorted(r["Name"] for r in rules) == sorted(r.name for r in EVENT_RULES)
    declared = EVENT_RULES[0]
    described = client.describe_rule(Name=declared.name, EventBusName="chatflow")
    assert json.loads(described["EventPattern"]) == declared.pattern
    assert described["State"] == "ENABLED"
    targets = client.list_targets_by_rule(Rule=declared.name, EventBusName="chatflow")["Targets"]
    assert [t["Id"] for t in targets] == list(declared.targets)
    assert targets[0]["RetryPolicy"]["MaximumRetryAttempts"] == declared.retry.max_attempts
    with pytest.raises(ClientError) as excinfo:
        client.describe_rule(Name="missing", EventBusName="chatflow")
    assert excinfo.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_test_event_pattern_and_invalid_pattern(client: EventBridgeClient) -> None:
    event = json.dumps(
        {
            "id": "1",
            "account": "1",
            "source": "chatflow.chat",
            "time": "2026-01-01T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail-type": "message.created",
            "detail": {"seq": 3},
        }
    )
    ok = client.test_event_pattern(
        EventPattern=json.dumps({"detail": {"seq": [{"numeric": [">", 2]}]}}), Event=event
    )
    assert ok["Result"] is True
    no = client.test_event_pattern(
        EventPattern=json.dumps({"detail": {"seq": [{"numeric": ["<", 2]}]}}), Event=event
    )
    assert no["Result"] is False
    with pytest.raises(ClientError) as excinfo:
        client.test_event_pattern(EventPattern=json.dumps({"detail": {"seq": 3}}), Event=event)
    assert excinfo.value.response["Error"]["Code"] == "InvalidEventPatternException"


def test_replay_through_the_api(
    client: EventBridgeClient, api: RunningEventBridgeApi, recorder: Recorder
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    client.put_events(Entries=[{"Source": EVENT_SOURCE, "DetailType": "member.joined", "Detail": "{}"}])
    assert api.bus.wait_idle()
    archive = client.list_archives()["Archives"][0]
    assert archive["EventCount"] == 1
    rule_arn = client.describe_rule(Name="notify-on-message-and-join", EventBusName="chatflow")["Arn"]
    started = client.start_replay(
        ReplayName="r1",
        EventSourceArn=api.bus.archive_arn,
        EventStartTime=start,
        EventEndTime=datetime.now(UTC),
        Destination={"Arn": api.bus.arn, "FilterArns": [rule_arn]},
    )
    assert started["State"] == "STARTING"
    api.bus.wait_replay("r1")
    described = client.describe_replay(ReplayName="r1")
    assert described["State"] == "COMPLETED"
    replayed = [e for e in recorder.events_for("notifications") if e.get("replay-name") == "r1"]
    assert len(replayed) == 1
    with pytest.raises(ClientError) as excinfo:
        client.describe_replay(ReplayName="nope")
    assert excinfo.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_unknown_operation_is_a_clear_error(client: EventBridgeClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.list_event_buses()
    assert excinfo.value.response["Error"]["Code"] == "UnknownOperationException"


def test_dead_letters_are_listed_and_redriven_from_their_sqs_queue() -> None:
    """The DLQ is an SQS queue on the same endpoint: ``/_local/dead-letters`` lists it, and the
    cloud's redrive (``chatflow_dev.events.redrive_sqs`` with a boto3 sqs client) empties it."""
    import urllib.request

    from chatflow_dev import events as tools

    attempts: dict[str, int] = {}

    def flaky(function: str, event: dict[str, Any]) -> None:
        attempts[function] = attempts.get(function, 0) + 1
        if function == "notifications" and not healed.is_set():
            raise RuntimeError("notifications store is down")

    healed = threading.Event()
    rule = type(EVENT_RULES[0])(
        "notify",
        "d",
        {"source": [EVENT_SOURCE]},
        targets=("notifications",),
        retry=RetryPolicy(max_attempts=1),
    )
    bus = LocalEventBus.from_catalog(
        flaky,
        rules=[rule],
        name="chatflow",
        region="us-east-1",
        name_prefix="chatflow-test",
        backoff=Backoff(base_s=0.001),
    )
    with running_eventbridge_api(bus) as api:
        local = events_client(api.endpoint_url)
        sqs = sqs_client(api.endpoint_url)
        event = {"Source": EVENT_SOURCE, "DetailType": "member.left", "Detail": json.dumps(_member_left())}
        event_id = local.put_events(Entries=[event])["Entries"][0]["EventId"]
        assert bus.wait_idle()
        with urllib.request.urlopen(f"{api.endpoint_url}/_local/dead-letters?target=notifications") as resp:
            letters = json.loads(resp.read())["DeadLetters"]
        assert [(d["target_id"], d["event"]["id"], d["attempts"]) for d in letters] == [
            ("notifications", event_id, 2)
        ]
        assert letters[0]["error_message"] == "notifications store is down"
        queue_url = sqs.get_queue_url(QueueName="chatflow-test-notify-notifications-dlq")["QueueUrl"]
        assert queue_url == f"{api.endpoint_url}/000000000000/chatflow-test-notify-notifications-dlq"
        described = local.list_targets_by_rule(Rule="notify", EventBusName="chatflow")["Targets"][0]
        assert (
            described["DeadLetterConfig"]["Arn"]
            == sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        )

        healed.set()
        result = tools.redrive_sqs(sqs, local, queue_url, bus_name="chatflow", wait_s=0)
        assert (result.received, result.redriven, result.invalid, result.failed) == (1, 1, 0, 0)
        assert bus.wait_idle()
        assert bus.dead_letters() == []
        assert attempts["notifications"] == 3
        # The redriven copy is a new event (PutEvents again) with the same detail.
        assert [d[:2] for d in bus.delivered()] == [("notify", "notifications")]


def _member_left() -> dict[str, Any]:
    from chatflow.events.schemas import MemberLeft

    return MemberLeft(room_id=uuid.uuid4(), user_id=uuid.uuid4()).detail()
