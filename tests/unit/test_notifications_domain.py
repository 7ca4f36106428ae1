"""Pure planning rules of the notifications and analytics consumers (no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from chatflow.domain import analytics, notifications
from chatflow.domain.analytics_models import Delta
from chatflow.domain.notification_models import Recipient, RoomAudience
from chatflow.errors import InvalidInput
from chatflow.events.schemas import MemberJoined, MessageCreated, MessageDeleted, UserBanned

SENDER, ANA, BEN, CY = (uuid.uuid4() for _ in range(4))
ROOM = uuid.uuid4()
AT = datetime(2026, 11, 25, 13, 45, 12, tzinfo=UTC)


def _audience(kind: str = "public") -> RoomAudience:
    members = (Recipient(SENDER, "sam"), Recipient(ANA, "Ana"), Recipient(BEN, "ben"), Recipient(CY, "cy"))
    return RoomAudience(ROOM, kind, "general" if kind != "dm" else None, members)


def _message(body: str = "hi", mentions: list[str] | None = None) -> MessageCreated:
    return MessageCreated(
        room_id=ROOM,
        seq=9,
        message_id=uuid.uuid4(),
        sender_id=SENDER,
        sender_handle="sam",
        client_message_id="c9",
        body=body,
        mentions=mentions or [],
        created_at=AT,
    )


def test_only_offline_non_senders_are_counted_mentions_case_insensitive() -> None:
    plan = notifications.plan_message(_message("hey @ana", ["ANA", "cy"]), _audience(), online={CY})
    assert {(b.user_id, b.messages, b.mentions) for b in plan.counters} == {(ANA, 1, 1), (BEN, 1, 0)}
    assert [(n.user_id, n.kind) for n in plan.notifications] == [(ANA, "mention")]


def test_dm_peer_gets_a_direct_message_notification() -> None:
    audience = RoomAudience(ROOM, "dm", None, (Recipient(SENDER, "sam"), Recipient(ANA, "ana")))
    plan = notifications.plan_message(_message("x" * 500), audience, online=set())
    (note,) = plan.notifications
    assert note.kind == "direct_message"
    assert len(note.preview) == notifications.PREVIEW_CHARS
    assert note.preview.endswith("…")


def test_everyone_online_means_nothing_to_do() -> None:
    assert notifications.plan_message(_message(), _audience(), online={ANA, BEN, CY}).empty


@pytest.mark.parametrize(
    ("added_by", "online", "member", "expected"),
    [
        (SENDER, set(), True, 1),
        (None, set(), True, 0),  # joined themselves
        (ANA, set(), True, 0),  # "added" themselves
        (SENDER, {ANA}, True, 0),  # online: sees it live
        (SENDER, set(), False, 0),  # already left again
    ],
)
def test_added_to_room(
    added_by: uuid.UUID | None, online: set[uuid.UUID], member: bool, expected: int
) -> None:
    audience = _audience() if member else RoomAudience(ROOM, "public", "general", (Recipient(SENDER, "sam"),))
    plan = notifications.plan_member_joined(
        MemberJoined(room_id=ROOM, user_id=ANA, added_by=added_by), audience, online, "sam"
    )
    assert len(plan.notifications) == expected
    if expected:
        assert plan.notifications[0].preview == "sam added you to general"


def test_analytics_plan_uses_message_time_and_names_counters() -> None:
    delta = analytics.plan(_message())
    assert delta == Delta(
        date(2026, 11, 25), "messages_created", SENDER, (ROOM, AT.replace(minute=0, second=0))
    )
    deleted = analytics.plan(
        MessageDeleted(room_id=ROOM, seq=1, message_id=uuid.uuid4(), deleted_by=SENDER, deleted_at=AT)
    )
    assert (deleted.counter, deleted.active_user, deleted.room_hour) == ("messages_deleted", None, None)
    assert analytics.plan(UserBanned(user_id=ANA, banned_by=SENDER)).counter == "users_banned"


def test_list_and_mark_read_validate_their_input() -> None:
    class Repo:
        def list_for_user(self, *a: object, **k: object) -> tuple[list[object], list[object]]:
            return [], []

        def mark_read(self, *a: object, **k: object) -> tuple[int, int]:
            return 0, 0

    service = notifications.NotificationService(Repo(), None, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        service.list_for_user(ANA, before=None, limit=0)
    with pytest.raises(InvalidInput):
        service.mark_read(ANA)
    assert service.mark_read(ANA, everything=True) == {"roomsCleared": 0, "notificationsRead": 0}
