"""Messages against the real Postgres + Redis: gap-free seq, idempotency, edit/delete, outbox."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from chatflow.container import Container
from chatflow.domain.identity import Identity
from chatflow.domain.messages import MessageService
from chatflow.domain.rooms import RoomService
from chatflow.errors import Conflict, Forbidden, InvalidInput, NotFound
from chatflow.events.schemas import UserOnline
from chatflow.wire import message_to_dict
from tests.support.events import flush_relay_replaced
from tests.support.rooms import MESSAGE_KEYS, insert_user, outbox_details, run_concurrently

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def room_id(rooms: RoomService, owner: Identity) -> UUID:
    return rooms.create_channel(owner, "public", f"general-{uuid4().hex[:8]}").room.id


def _count(db: DB, room_id: UUID) -> int:
    row = db.execute("SELECT count(*) AS n FROM messages WHERE room_id = %s", (room_id,)).fetchone()
    assert row is not None
    return int(row["n"])


def test_send_assigns_next_seq_and_writes_outbox_row(
    messages: MessageService, db: DB, owner: Identity, room_id: UUID
) -> None:
    first, created = messages.send(owner, room_id, "c-1", "hello")
    second, _ = messages.send(owner, room_id, "c-2", "again")
    assert created
    assert (first.seq, second.seq) == (1, 2)
    assert first.sender_handle == owner.handle
    details = outbox_details(db, "message.created", room_id)
    assert [d["seq"] for d in details] == [1, 2]
    assert details[0]["message_id"] == str(first.id)
    assert details[0]["client_message_id"] == "c-1"
    assert db.execute("SELECT last_seq FROM rooms WHERE id = %s", (room_id,)).fetchone() == {"last_seq": 2}


def test_resend_returns_original_and_writes_nothing(
    messages: MessageService, db: DB, owner: Identity, room_id: UUID
) -> None:
    original, created = messages.send(owner, room_id, "same", "first body")
    again, created_again = messages.send(owner, room_id, "same", "different body")
    assert created
    assert not created_again
    assert again == original
    assert again.body == "first body"
    assert len(outbox_details(db, "message.created", room_id)) == 1
    assert db.execute("SELECT last_seq FROM rooms WHERE id = %s", (room_id,)).fetchone() == {"last_seq": 1}


def test_client_id_reused_in_another_room_is_a_conflict(
    rooms: RoomService, messages: MessageService, owner: Identity, room_id: UUID
) -> None:
    other = rooms.create_channel(owner, "public", f"other-{uuid4().hex[:8]}").room.id
    messages.send(owner, room_id, "dup", "one")
    with pytest.raises(Conflict):
        messages.send(owner, other, "dup", "two")


def test_concurrent_sends_get_gap_free_sequences(
    rooms: RoomService, messages: MessageService, db: DB, owner: Identity, room_id: UUID, wide_pool: None
) -> None:
    senders = [owner] + [insert_user(db) for _ in range(7)]
    for user in senders[1:]:
        rooms.join(user, room_id)

    def run(i: int) -> None:
        user = senders[i]
        for n in range(25):
            messages.send(user, room_id, f"{user.user_id}-{n}", f"message {n}")

    assert run_concurrently(len(senders), run) == [None] * len(senders)
    rows = db.execute("SELECT seq FROM messages WHERE room_id = %s ORDER BY seq", (room_id,))
    seqs = [r["seq"] for r in rows]
    assert seqs == list(range(1, 201))
    assert db.execute("SELECT last_seq FROM rooms WHERE id = %s", (room_id,)).fetchone() == {"last_seq": 200}
    assert len(outbox_details(db, "message.created", room_id)) == 200


def test_concurrent_identical_sends_create_one_message(
    messages: MessageService, db: DB, owner: Identity, room_id: UUID, wide_pool: None
) -> None:

    def run(_: int) -> tuple[int, bool]:
        message, created = messages.send(owner, room_id, "racy", "only once")
        return message.seq, created

    assert sorted(run_concurrently(6, run), key=str) == [(1, False)] * 5 + [(1, True)]
    assert _count(db, room_id) == 1
    assert len(outbox_details(db, "message.created", room_id)) == 1


def test_failed_send_writes_no_outbox_row_and_leaves_no_gap(
    chat: Container, messages: MessageService, db: DB, owner: Identity, room_id: UUID
) -> None:
    messages.send(owner, room_id, "ok-1", "fine")
    # A body Postgres refuses inside the transaction (after the seq was taken): NUL bytes
    # are stopped by validation, so bypass it and hit the repository directly.
    with pytest.raises(psycopg.Error):
        chat.message_repository.insert(
            room_id=room_id,
            message_id=uuid4(),
            sender_id=owner.user_id,
            client_message_id="broken",
            body="nul\x00byte",
            mention_candidates=[],
            check=lambda room, membership: None,
            # The event is built before the (single) write statement; it must not be stored.
            event=lambda m: UserOnline(user_id=m.sender_id),
        )
    second, _ = messages.send(owner, room_id, "ok-2", "fine again")
    assert second.seq == 2
    assert [d["seq"] for d in outbox_details(db, "message.created", room_id)] == [1, 2]


def test_failed_event_rolls_back_the_message(chat: Container, db: DB, owner: Identity, room_id: UUID) -> None:
    def boom(message: Any) -> Any:
        raise RuntimeError("event construction failed")

    with pytest.raises(RuntimeError):
        chat.message_repository.insert(
            room_id=room_id,
            message_id=uuid4(),
            sender_id=owner.user_id,
            client_message_id="rolled-back",
            body="never stored",
            mention_candidates=[],
            check=lambda room, membership: None,
            event=boom,
        )
    assert _count(db, room_id) == 0
    assert db.execute("SELECT last_seq FROM rooms WHERE id = %s", (room_id,)).fetchone() == {"last_seq": 0}
    assert outbox_details(db, "message.created", room_id) == []


def test_mentions_resolve_to_room_members_only(
    rooms: RoomService, messages: MessageService, db: DB, owner: Identity, room_id: UUID
) -> None:
    member = insert_user(db, handle=f"Alice{uuid4().hex[:6]}")
    outsider = insert_user(db)
    rooms.join(member, room_id)
    body = f"hi @{member.handle.lower()} and @{outsider.handle}, mail me at x@{owner.handle}"
    message, _ = messages.send(owner, room_id, "m-1", body)
    assert message.mentions == (member.handle,)
    assert outbox_details(db, "message.created", room_id)[0]["mentions"] == [member.handle]


def test_non_member_cannot_send(
    rooms: RoomService, messages: MessageService, db: DB, owner: Identity, room_id: UUID
) -> None:
    stranger = insert_user(db)
    with pytest.raises(Forbidden):
        messages.send(stranger, room_id, "x", "hi")
    private = rooms.create_channel(owner, "private", f"secret-{uuid4().hex[:8]}").room.id
    with pytest.raises(NotFound):
        messages.send(stranger, private, "y", "hi")
    with pytest.raises(NotFound):
        messages.send(stranger, uuid4(), "z", "hi")


@pytest.mark.parametrize(
    ("client_id", "body"),
    [("ok", ""), ("ok", "   "), ("ok", "x" * 4001), ("has space", "hi"), ("", "hi"), ("ok", "bad\x00")],
)
def test_send_validates_input(
    messages: MessageService, owner: Identity, room_id: UUID, client_id: str, body: str
) -> None:
    with pytest.raises(InvalidInput):
        messages.send(owner, room_id, client_id, body)


def test_edit_by_author_and_not_by_others(
    rooms: RoomService, messages: MessageService, db: DB, owner: Identity, room_id: UUID
) -> None:
    other = insert_user(db)
    rooms.join(other, room_id)
    message, _ = messages.send(owner, room_id, "e-1", "typo")
    with pytest.raises(Forbidden):
        messages.edit(other, room_id, message.seq, "hijack")
    edited = messages.edit(owner, room_id, message.seq, "fixed")
    assert edited.body == "fixed"
    assert edited.edited_at is not None
    stored = db.execute("SELECT body, edited_at FROM messages WHERE id = %s", (message.id,)).fetchone()
    assert stored is not None
    assert stored["body"] == "fixed"
    events = outbox_details(db, "message.edited", room_id)
    assert [(e["seq"], e["body"]) for e in events] == [(1, "fixed")]
    with pytest.raises(NotFound):
        messages.edit(owner, room_id, 99, "nothing there")


def test_soft_delete_by_author_or_admin(
    rooms: RoomService, messages: MessageService, db: DB, owner: Identity, room_id: UUID
) -> None:
    other = insert_user(db)
    admin = insert_user(db, role="admin")  # not a member: admins moderate any room
    rooms.join(other, room_id)
    mine, _ = messages.send(owner, room_id, "d-1", "mine")
    theirs, _ = messages.send(other, room_id, "d-2", "theirs")
    with pytest.raises(Forbidden):
        messages.delete(other, room_id, mine.seq)
    deleted = messages.delete(owner, room_id, mine.seq)
    assert deleted.deleted_at is not None
    assert message_to_dict(deleted)["body"] is None
    assert messages.delete(admin, room_id, theirs.seq).is_deleted
    # Idempotent: deleting again changes nothing and emits nothing.
    messages.delete(owner, room_id, mine.seq)
    assert len(outbox_details(db, "message.deleted", room_id)) == 2
    with pytest.raises(Conflict):
        messages.edit(owner, room_id, mine.seq, "resurrect")
    page = messages.history(owner, room_id)
    assert [(m.seq, message_to_dict(m)["body"]) for m in page.messages] == [(1, None), (2, None)]
    # The row stays as a tombstone (id, seq, sender, deletedAt) but the text is gone.
    assert _count(db, room_id) == 2
    rows = db.execute(
        "SELECT id, seq, sender_id, body, deleted_at FROM messages WHERE room_id = %s ORDER BY seq",
        (room_id,),
    ).fetchall()
    assert [(r["id"], r["seq"], r["sender_id"], r["body"]) for r in rows] == [
        (mine.id, 1, owner.user_id, None),
        (theirs.id, 2, other.user_id, None),
    ]
    assert all(r["deleted_at"] is not None for r in rows)
    tombstone = message_to_dict(page.messages[0])
    assert tombstone["id"] == str(mine.id)
    assert tombstone["senderId"] == str(owner.user_id)
    assert tombstone["deletedAt"] is not None


def test_the_store_refuses_a_deleted_message_that_keeps_its_text(
    messages: MessageService, db: DB, owner: Identity, room_id: UUID
) -> None:
    sent, _ = messages.send(owner, room_id, "keep-text", "secret words")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE messages SET deleted_at = now() WHERE id = %s", (sent.id,))
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE messages SET body = NULL WHERE id = %s", (sent.id,))


def test_message_to_dict_shape(messages: MessageService, owner: Identity, room_id: UUID) -> None:
    message, _ = messages.send(owner, room_id, "shape", "hello")
    data = message_to_dict(message)
    assert set(data) == MESSAGE_KEYS
    assert data["roomId"] == str(room_id)
    assert data["createdAt"].endswith("Z")
    assert data["editedAt"] is None


class _CommitProbe:
    """Stands in for EVENTS' relay in the after-commit flush and records what another connection
    sees at that moment: the flush must come AFTER the commit (the outbox row is visible)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.seen: list[int] = []

    def run_once(self, limit: int) -> Any:
        from chatflow.adapters.outbox_relay import RelayResult

        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
        assert row is not None
        self.seen.append(int(row[0]))
        return RelayResult()


def test_outbox_is_flushed_after_commit(
    chat: Container,
    messages: MessageService,
    db: DB,
    owner: Identity,
    room_id: UUID,
    chatflow_env: dict[str, str],
) -> None:
    probe = _CommitProbe(chatflow_env["DATABASE_URL"])
    with flush_relay_replaced(chat, probe):
        before = db.execute("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL").fetchone()
        assert before is not None
        messages.send(owner, room_id, "flushed", "hello")
        messages.send(owner, room_id, "flushed", "hello")  # a resend writes nothing, flushes nothing
    assert probe.seen == [before["n"] + 1]
