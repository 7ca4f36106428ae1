"""Analytics consumer: real Postgres tables, EMF metrics on stdout, idempotent on event_id."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from types import ModuleType
from typing import Any

import psycopg
import pytest

from chatflow.container import Container
from chatflow.domain.analytics import AnalyticsService
from chatflow.domain.analytics_models import Applied, DailyFigures, RoomHour
from chatflow.errors import InvalidInput
from chatflow.events.schemas import ConnectionOpened, MemberLeft, MessageCreated, UserOnline
from chatflow.wire import analytics_report_to_dict
from tests.support.apigw import lambda_context
from tests.support.events import envelope
from tests.support.lambdas import load_handler_module

DB = psycopg.Connection[dict[str, Any]]
# A day of its own, far from other tests' "today", so the figures are ours alone.
DAY = datetime(2031, 3, 14, tzinfo=UTC)


@pytest.fixture
def fn(chatflow_env: dict[str, str]) -> ModuleType:
    return load_handler_module("analytics")


def _invoke(module: ModuleType, raw: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = module.handler(raw, lambda_context("chatflow-analytics"))
    return result


def _metrics(out: str) -> dict[str, float]:
    """Sum of every EMF metric printed to stdout."""
    totals: dict[str, float] = {}
    for line in out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                values = doc[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(
                    values if isinstance(values, list) else [values]
                )
    return totals


def _message(room: uuid.UUID, sender: uuid.UUID, at: datetime, seq: int) -> MessageCreated:
    return MessageCreated(
        occurred_at=at,
        room_id=room,
        seq=seq,
        message_id=uuid.uuid4(),
        sender_id=sender,
        sender_handle="s",
        client_message_id=f"c{seq}",
        body="x",
        created_at=at,
    )


def test_counts_messages_per_room_hour_active_users_and_connections_once(
    container: Container, db: DB, fn: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    room_a, room_b = uuid.uuid4(), uuid.uuid4()
    alice, bob = uuid.uuid4(), uuid.uuid4()
    events = [
        _message(room_a, alice, DAY.replace(hour=9, minute=1), 1),
        _message(room_a, bob, DAY.replace(hour=9, minute=59), 2),
        _message(room_a, alice, DAY.replace(hour=10, minute=0), 3),
        _message(room_b, alice, DAY.replace(hour=9, minute=30), 1),
        ConnectionOpened(occurred_at=DAY.replace(hour=8), user_id=alice, connection_id="c-1"),
        ConnectionOpened(occurred_at=DAY.replace(hour=8), user_id=bob, connection_id="c-2"),
        MemberLeft(occurred_at=DAY.replace(hour=11), room_id=room_b, user_id=bob),
    ]
    capsys.readouterr()
    for event in events:
        assert _invoke(fn, envelope(event))["duplicate"] is False
    first = _metrics(capsys.readouterr().out)
    # Redelivery and replay of everything: nothing counts again.
    for event in events:
        assert _invoke(fn, envelope(event))["duplicate"] is True
        assert _invoke(fn, envelope(event, replay_name="r1"))["duplicate"] is True
    second = _metrics(capsys.readouterr().out)

    hourly = db.execute(
        "SELECT room_id, hour, messages FROM analytics_room_hourly WHERE room_id = ANY(%s)",
        ([room_a, room_b],),
    ).fetchall()
    assert {(r["room_id"], r["hour"].astimezone(UTC).hour, r["messages"]) for r in hourly} == {
        (room_a, 9, 2),
        (room_a, 10, 1),
        (room_b, 9, 1),
    }
    report = container.analytics.report(start=DAY.date(), end=DAY.date(), room_id=None)
    (day,) = report.daily
    assert day.active_users == 2
    assert day.counters["messages_created"] == 4
    assert day.counters["connections_opened"] == 2
    assert day.counters["members_left"] == 1
    assert first["MessagesCreated"] == 4
    assert first["ConnectionsOpened"] == 2
    assert first["DailyActiveUsers"] == 2
    assert "MessagesCreated" not in second
    assert second["DuplicateEventsIgnored"] == 2 * len(events)


def test_invalid_event_is_logged_counted_and_raised_valid_one_logged_with_its_ids(
    fn: ModuleType, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from chatflow.events.schemas import InvalidEvent

    good = envelope(MemberLeft(occurred_at=DAY, room_id=uuid.uuid4(), user_id=uuid.uuid4()))
    capsys.readouterr()
    with pytest.raises(InvalidEvent, match="room_id"):
        _invoke(fn, good | {"id": "env-1", "detail": {**good["detail"], "room_id": "x"}})
    assert _metrics(capsys.readouterr().out)["InvalidEvents"] == 1
    [refused] = [r for r in caplog.records if r.getMessage() == "invalid event refused"]
    assert refused.__dict__["envelope_id"] == "env-1"
    assert "room_id" in refused.__dict__["reason"]

    _invoke(fn, good)
    assert "InvalidEvents" not in _metrics(capsys.readouterr().out)
    # Every line of that invocation carries the event's ids (the logger's keys).
    keys = fn.logger.get_current_keys()
    assert keys["event_id"] == good["detail"]["event_id"]
    assert keys["detail_type"] == "member.left"


def test_report_fills_days_filters_room_and_validates_range(
    container: Container, db: DB, fn: ModuleType
) -> None:
    room = uuid.uuid4()
    day = DAY + timedelta(days=40)
    _invoke(fn, envelope(_message(room, uuid.uuid4(), day.replace(hour=5), 1)))
    _invoke(fn, envelope(UserOnline(occurred_at=day, user_id=uuid.uuid4())))
    service = container.analytics
    report = service.report(start=day.date() - timedelta(days=2), end=day.date(), room_id=room)
    body: Any = json.loads(json.dumps(analytics_report_to_dict(report)))
    assert [d["date"] for d in body["daily"]] == [
        (day.date() - timedelta(days=2)).isoformat(),
        (day.date() - timedelta(days=1)).isoformat(),
        day.date().isoformat(),
    ]
    assert body["daily"][0]["activeUsers"] == 0
    assert body["daily"][2]["activeUsers"] == 2
    assert body["daily"][2]["messagesCreated"] == 1
    assert body["roomsHourly"] == [
        {"roomId": str(room), "hour": day.replace(hour=5).isoformat(), "messages": 1}
    ]
    with pytest.raises(InvalidInput, match="after"):
        service.report(start=date(2031, 1, 2), end=date(2031, 1, 1), room_id=None)
    with pytest.raises(InvalidInput, match="at most"):
        service.report(start=date(2030, 1, 1), end=date(2031, 1, 1), room_id=None)


def test_default_range_is_the_last_seven_days() -> None:
    class Empty:
        def daily(self, start: date, end: date) -> list[DailyFigures]:
            return []

        def rooms_hourly(self, *args: Any) -> list[RoomHour]:
            return []

        def apply(self, *args: Any) -> Applied:
            raise AssertionError

    service = AnalyticsService(Empty())
    report = service.report(start=None, end=None, room_id=None, today=date(2026, 11, 25))
    assert (report.start, report.end, len(report.daily)) == (date(2026, 11, 19), date(2026, 11, 25), 7)
