"""The in-process event bus: catalog rules, async delivery, retry policy, DLQ, archive, replay.

Targets are plain recording callables here (the local gateway plugs in the real handlers).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from infra.catalog import EVENT_RULES, EVENT_SOURCE, RetryPolicy
from local_stack.eventbridge import Backoff, EventBusError, LocalEventBus, TargetRetryPolicy
from local_stack.eventbridge.bus import MAX_REQUEST_BYTES
from tests.support.events import TargetRecorder as Recorder

FAST = Backoff(base_s=0.001, cap_s=0.005)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def bus(recorder: Recorder) -> Iterator[LocalEventBus]:
    with LocalEventBus.from_catalog(recorder, name="chatflow", region="us-east-1", backoff=FAST, seed=1) as b:
        yield b


def entry(detail_type: str, detail: dict[str, Any] | str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Source": EVENT_SOURCE,
        "DetailType": detail_type,
        "Detail": detail if isinstance(detail, str) else json.dumps(detail or {"room_id": "r1"}),
    }
    out.update(extra)
    return out


def test_rules_come_from_the_catalog(bus: LocalEventBus) -> None:
    assert {r.name for r in bus.rules()} == {r.name for r in EVENT_RULES}
    for declared in EVENT_RULES:
        rule = bus.rule(declared.name)
        assert [t.function for t in rule.targets] == list(declared.targets)
        assert rule.targets[0].retry.maximum_retry_attempts == declared.retry.max_attempts
        assert rule.arn == f"arn:aws:events:us-east-1:000000000000:rule/chatflow/{declared.name}"


def test_matching_rules_deliver_an_eventbridge_envelope(bus: LocalEventBus, recorder: Recorder) -> None:
    result = bus.put_events([entry("message.created", {"room_id": "r1", "seq": 1}, Resources=["arn:x"])])
    assert result["FailedEntryCount"] == 0
    event_id = result["Entries"][0]["EventId"]
    assert bus.wait_idle()
    # message.created matches both rules: notifications and analytics.
    (notif,) = recorder.events_for("notifications")
    (analytic,) = recorder.events_for("analytics")
    assert notif == analytic
    assert notif["id"] == event_id
    assert set(notif) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert notif["version"] == "0"
    assert notif["detail-type"] == "message.created"
    assert notif["source"] == EVENT_SOURCE
    assert notif["detail"] == {"room_id": "r1", "seq": 1}
    assert notif["resources"] == ["arn:x"]
    assert notif["region"] == "us-east-1"
    assert notif["time"].endswith("Z")


def test_non_matching_rule_gets_nothing(bus: LocalEventBus, recorder: Recorder) -> None:
    bus.put_events([entry("user.online", {"user_id": "u1"})])
    assert bus.wait_idle()
    assert recorder.events_for("notifications") == []
    assert len(recorder.events_for("analytics")) == 1


def test_explicit_time_is_kept(bus: LocalEventBus, recorder: Recorder) -> None:
    bus.put_events([entry("user.online", Time=1_700_000_000)])
    assert bus.wait_idle()
    assert recorder.events_for("analytics")[0]["time"] == "2023-11-14T22:13:20Z"


def test_unusable_times_fail_alone(bus: LocalEventBus) -> None:
    result = bus.put_events(
        [
            entry("x", Time="garbage"),
            entry("x", Time=1e20),  # past any calendar: refused, not an OverflowError (HTTP 500)
            entry("x", Time=float("nan")),
            entry("x", Time=float("inf")),
            entry("user.online", Time="2026-01-02T03:04:05Z"),
        ]
    )
    assert [e.get("ErrorCode") for e in result["Entries"]] == ["InvalidArgument"] * 4 + [None]
    assert result["FailedEntryCount"] == 4


def test_invalid_entries_fail_alone(bus: LocalEventBus, recorder: Recorder) -> None:
    result = bus.put_events(
        [
            entry("message.created"),
            entry("message.created", "not json"),
            entry("message.created", "[1, 2]"),
            {"Source": EVENT_SOURCE, "Detail": "{}"},
            {"DetailType": "x", "Detail": "{}"},
            entry("x", Source="aws.ec2"),
            entry("x", EventBusName="other-bus"),
            entry("user.online"),
        ]
    )
    codes = [e.get("ErrorCode") for e in result["Entries"]]
    assert codes == [
        None,
        "MalformedDetail",
        "MalformedDetail",
        "InvalidArgument",
        "InvalidArgument",
        "NotAuthorizedForSourceException",
        "ResourceNotFoundException",
        None,
    ]
    assert result["FailedEntryCount"] == 6
    assert "DetailType" in result["Entries"][3]["ErrorMessage"]
    assert bus.wait_idle()
    assert [e["detail-type"] for e in recorder.events_for("analytics")] == ["message.created", "user.online"]


def test_request_level_limits(bus: LocalEventBus) -> None:
    with pytest.raises(EventBusError, match="length between 1 and 10"):
        bus.put_events([entry("x")] * 11)
    with pytest.raises(EventBusError, match="length between 1 and 10"):
        bus.put_events([])
    big = json.dumps({"body": "x" * MAX_REQUEST_BYTES})
    with pytest.raises(EventBusError, match="over the limit") as excinfo:
        bus.put_events([entry("message.created", big)])
    assert excinfo.value.code == "ValidationException"
    assert bus.archived() == []


def test_failing_target_is_retried_then_succeeds(bus: LocalEventBus, recorder: Recorder) -> None:
    recorder.failing["notifications"] = 3
    bus.put_events([entry("member.joined", {"user_id": "u"})])
    assert bus.wait_idle()
    assert len(recorder.events_for("notifications")) == 4
    assert len(recorder.events_for("analytics")) == 1  # the other target is not held back
    assert bus.dead_letters() == []
    ids = {e["id"] for e in recorder.events_for("notifications")}
    assert len(ids) == 1  # a retry re-sends the same event


def test_exhausted_retries_go_to_the_targets_dead_letter_queue(recorder: Recorder) -> None:
    """Here the invoker (the hand-off to Lambda) fails: that IS what the rule's policy covers."""
    rules = [
        type(EVENT_RULES[0])(
            "notify",
            "d",
            {"source": [EVENT_SOURCE]},
            targets=("notifications",),
            retry=RetryPolicy(max_attempts=2),
        )
    ]
    with LocalEventBus.from_catalog(
        recorder, rules=rules, name="b", region="us-east-1", name_prefix="chatflow-test", backoff=FAST
    ) as bus:
        recorder.failing["notifications"] = -1
        event_id = bus.put_event(source=EVENT_SOURCE, detail_type="message.created", detail={"a": 1})
        assert bus.wait_idle()
        # MaximumRetryAttempts=2: the first try plus two retries.
        assert len(recorder.events_for("notifications")) == 3
        (letter,) = bus.dead_letters("notifications")
        assert letter.event["id"] == event_id
        assert letter.attempts == 3
        assert letter.error_code == "SDK_CLIENT_ERROR"
        assert letter.error_message == "notifications is down"
        assert letter.condition == "MaximumRetryAttemptsExhausted"
        assert letter.rule_arn.endswith(":rule/b/notify")
        # The DLQ is an SQS queue named as the CDK app names it (infra.catalog.target_dlq_name),
        # the message is the event, the attributes are EventBridge's.
        assert letter.queue == "chatflow-test-notify-notifications-dlq"
        (message,) = bus.queues.peek(letter.queue)
        assert json.loads(message.body)["id"] == event_id
        assert {k: v["StringValue"] for k, v in message.attributes.items()} == {
            "RULE_ARN": "arn:aws:events:us-east-1:000000000000:rule/b/notify",
            "TARGET_ARN": "arn:aws:lambda:us-east-1:000000000000:function:notifications",
            "ERROR_CODE": "SDK_CLIENT_ERROR",
            "ERROR_MESSAGE": "notifications is down",
            "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttemptsExhausted",
            "RETRY_ATTEMPTS": "2",
        }
        assert bus.dead_letters("analytics") == []


def test_max_event_age_dead_letters_before_retries_run_out(recorder: Recorder) -> None:
    now = [1_000_000.0]
    bus = LocalEventBus(
        name="b", invoke=recorder, backoff=Backoff(base_s=10, cap_s=1000, jitter=False), clock=lambda: now[0]
    )
    bus.put_rule(
        "r",
        {"source": ["s"]},
        targets=["fn"],
        retry=TargetRetryPolicy(maximum_retry_attempts=100, maximum_event_age_s=60),
    )
    recorder.failing["fn"] = -1
    with bus:
        bus.put_event(source="s", detail_type="t", detail={})
        # Frozen clock: each retry comes due only when the test moves time on.
        for _ in range(20):
            assert bus.wait_idle(timeout=0.05) is False or bus.dead_letters()
            if bus.dead_letters():
                break
            now[0] += 10
            bus.tick()
    # Tries at t=0, 10, 30 (backoff 10, 20); the next (40 s later) would make the event 70 s old.
    (letter,) = bus.dead_letters()
    assert letter.attempts == 3
    assert len(recorder.events_for("fn")) == 3


def _wait_for(cond: Any, timeout: float = 10.0) -> bool:
    event = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if cond():
            return True
        event.wait(0.005)
    return bool(cond())


def test_archive_and_replay_adds_replay_name(bus: LocalEventBus, recorder: Recorder) -> None:
    t0 = bus.clock()
    bus.put_events([entry("message.created", {"n": 1}), entry("user.online", {"n": 2})])
    assert bus.wait_idle()
    t1 = bus.clock() + 0.001
    assert [e["detail"]["n"] for e in bus.archived()] == [1, 2]

    bus.start_replay("again", t0 - 1, t1, rules=[bus.rule_arn("notify-on-message-and-join")])
    replay = bus.wait_replay("again")
    assert replay.state == "COMPLETED"
    assert replay.replayed == 2
    replayed = [e for e in recorder.events_for("notifications") if "replay-name" in e]
    assert [e["detail"]["n"] for e in replayed] == [1]  # only the rule asked for; user.online didn't match
    assert replayed[0]["replay-name"] == "again"
    assert not [e for e in recorder.events_for("analytics") if "replay-name" in e]
    assert len(bus.archived()) == 2  # replays are not archived again

    with pytest.raises(EventBusError, match="already exists"):
        bus.start_replay("again", t0 - 1, t1)
    with pytest.raises(EventBusError, match="after EventStartTime"):
        bus.start_replay("bad", t1, t0)


def test_replay_window_excludes_events_outside(recorder: Recorder) -> None:
    now = [100.0]
    with LocalEventBus.from_catalog(recorder, name="b", region="us-east-1", clock=lambda: now[0]) as bus:
        bus.put_event(source=EVENT_SOURCE, detail_type="user.online", detail={"n": "early"})
        now[0] = 200.0
        bus.put_event(source=EVENT_SOURCE, detail_type="user.online", detail={"n": "late"})
        now[0] = 300.0
        bus.start_replay("late-only", 150.0, 250.0)
        assert bus.wait_replay("late-only").state == "COMPLETED"
    replayed = [e["detail"]["n"] for e in recorder.events_for("analytics") if "replay-name" in e]
    assert replayed == ["late"]


def test_injected_faults(bus: LocalEventBus, recorder: Recorder) -> None:
    bus.faults.fail_requests(1)
    with pytest.raises(EventBusError) as excinfo:
        bus.put_events([entry("user.online")])
    assert excinfo.value.status == 500
    assert excinfo.value.code == "InternalException"
    bus.faults.fail_entries(1, error_code="ThrottlingException")
    result = bus.put_events([entry("user.online", {"n": 1}), entry("user.online", {"n": 2})])
    assert [e.get("ErrorCode") for e in result["Entries"]] == ["ThrottlingException", None]
    assert result["FailedEntryCount"] == 1
    assert bus.wait_idle()
    assert [e["detail"]["n"] for e in recorder.events_for("analytics")] == [2]
    assert [e["detail"]["n"] for e in bus.archived()] == [2]


def test_schedules_invoke_their_function_with_a_scheduled_event(recorder: Recorder) -> None:
    from infra.catalog import SCHEDULES

    with LocalEventBus(name="b", invoke=recorder) as bus:
        bus.start_schedules(SCHEDULES, seconds_per_minute=0.01)
        assert _wait_for(lambda: len(recorder.events_for(SCHEDULES[0].function)) >= 2)
    event = recorder.events_for(SCHEDULES[0].function)[0]
    assert event["source"] == "aws.events"
    assert event["detail-type"] == "Scheduled Event"
    # Schedule rules live on the default bus: no bus name in their ARN.
    assert event["resources"] == [f"arn:aws:events:us-east-1:000000000000:rule/{SCHEDULES[0].name}"]
