"""History: keyset pagination by seq (before/after/limit edges), cursors, mark_read monotonic."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from chatflow.container import Container
from chatflow.domain.identity import Identity
from chatflow.domain.messages import MessageService
from chatflow.domain.rooms import RoomService
from chatflow.errors import Forbidden, InvalidInput, NotFound
from tests.support.rooms import insert_user, run_concurrently

DB = psycopg.Connection[dict[str, Any]]
TOTAL = 23


@pytest.fixture
def room_id(rooms: RoomService, messages: MessageService, owner: Identity) -> UUID:
    room = rooms.create_channel(owner, "public", f"hist-{uuid4().hex[:8]}").room.id
    for i in range(1, TOTAL + 1):
        messages.send(owner, room, f"h-{i}", f"message {i}")
    return room


def _seqs(page: Any) -> list[int]:
    return [m.seq for m in page.messages]


def test_latest_page_by_default(messages: MessageService, owner: Identity, room_id: UUID) -> None:
    page = messages.history(owner, room_id, limit=5)
    assert _seqs(page) == [19, 20, 21, 22, 23]
    assert page.last_seq == TOTAL
    assert page.prev_cursor == 19
    assert page.next_cursor is None


def test_walk_backwards_with_prev_cursor_covers_everything_once(
    messages: MessageService, owner: Identity, room_id: UUID
) -> None:
    seen: list[int] = []
    page = messages.history(owner, room_id, limit=5)
    seen = _seqs(page) + seen
    while page.prev_cursor is not None:
        page = messages.history(owner, room_id, before=page.prev_cursor, limit=5)
        assert len(page.messages) <= 5
        seen = _seqs(page) + seen
    assert seen == list(range(1, TOTAL + 1))
    assert _seqs(page) == [1, 2, 3]


def test_walk_forwards_with_next_cursor(messages: MessageService, owner: Identity, room_id: UUID) -> None:
    seen: list[int] = []
    page = messages.history(owner, room_id, after=0, limit=7)
    seen += _seqs(page)
    while page.next_cursor is not None:
        page = messages.history(owner, room_id, after=page.next_cursor, limit=7)
        seen += _seqs(page)
    assert seen == list(range(1, TOTAL + 1))


@pytest.mark.parametrize(
    ("kwargs", "expected", "prev", "next_"),
    [
        ({"before": 1}, [], None, None),
        ({"before": 2, "limit": 5}, [1], None, 1),
        ({"before": 6, "limit": 5}, [1, 2, 3, 4, 5], None, 5),
        ({"before": 7, "limit": 5}, [2, 3, 4, 5, 6], 2, 6),
        ({"before": 1000, "limit": 2}, [22, 23], 22, None),
        ({"after": TOTAL}, [], None, None),
        ({"after": TOTAL - 1}, [TOTAL], TOTAL, None),
        ({"after": 0, "limit": 1}, [1], None, 1),
        ({"after": 3, "before": 7}, [4, 5, 6], 4, 6),
        ({"after": 3, "before": 9, "limit": 2}, [4, 5], 4, 5),
        ({"after": 5, "before": 6}, [], None, None),
    ],
)
def test_keyset_edges(
    messages: MessageService,
    owner: Identity,
    room_id: UUID,
    kwargs: dict[str, int],
    expected: list[int],
    prev: int | None,
    next_: int | None,
) -> None:
    page = messages.history(owner, room_id, **kwargs)
    assert _seqs(page) == expected
    assert (page.prev_cursor, page.next_cursor) == (prev, next_)


def test_limit_is_capped_by_settings(
    messages: MessageService, owner: Identity, room_id: UUID, chatflow_env: dict[str, str]
) -> None:
    from chatflow.settings import get_settings

    cap = get_settings().history_page_max
    page = messages.history(owner, room_id, after=0, limit=cap + 50)
    assert len(page.messages) == min(TOTAL, cap)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": -1},
        {"before": 0},
        {"after": -1},
        {"after": 5, "before": 5},
        {"after": 9, "before": 2},
    ],
)
def test_invalid_bounds(
    messages: MessageService, owner: Identity, room_id: UUID, kwargs: dict[str, int]
) -> None:
    with pytest.raises(InvalidInput):
        messages.history(owner, room_id, **kwargs)


def test_history_needs_membership(
    rooms: RoomService, messages: MessageService, db: DB, owner: Identity, room_id: UUID
) -> None:
    stranger = insert_user(db)
    with pytest.raises(Forbidden):
        messages.history(stranger, room_id)
    private = rooms.create_channel(owner, "private", f"p-{uuid4().hex[:8]}").room.id
    with pytest.raises(NotFound):
        messages.history(stranger, private)
    with pytest.raises(NotFound):
        messages.history(owner, uuid4())


def test_empty_room(rooms: RoomService, messages: MessageService, owner: Identity) -> None:
    room = rooms.create_channel(owner, "public", f"e-{uuid4().hex[:8]}").room.id
    page = messages.history(owner, room)
    assert (page.messages, page.last_seq, page.prev_cursor, page.next_cursor) == ([], 0, None, None)


def test_mark_read_is_monotonic_and_bounded(
    rooms: RoomService, messages: MessageService, db: DB, owner: Identity, room_id: UUID
) -> None:
    reader = insert_user(db)
    rooms.join(reader, room_id)
    assert messages.mark_read(reader, room_id, 10) == 10
    assert messages.mark_read(reader, room_id, 4) == 10  # never backwards
    assert messages.mark_read(reader, room_id, 10_000) == TOTAL  # bounded by last_seq
    assert messages.mark_read(reader, room_id, 0) == TOTAL
    with pytest.raises(InvalidInput):
        messages.mark_read(reader, room_id, -1)
    with pytest.raises(Forbidden):
        messages.mark_read(insert_user(db), room_id, 1)
    with pytest.raises(NotFound):
        messages.mark_read(reader, uuid4(), 1)


def test_concurrent_mark_read_never_moves_backwards(
    rooms: RoomService, messages: MessageService, db: DB, owner: Identity, room_id: UUID, wide_pool: None
) -> None:
    reader = insert_user(db)
    rooms.join(reader, room_id)
    plans = [list(range(1, TOTAL + 1)), list(range(TOTAL, 0, -1)), [5, 20, 3], [TOTAL, 1, 2]]

    def run(i: int) -> None:
        for v in plans[i]:
            messages.mark_read(reader, room_id, v)

    assert run_concurrently(len(plans), run) == [None] * len(plans)
    row = db.execute(
        "SELECT last_read_seq FROM memberships WHERE room_id = %s AND user_id = %s", (room_id, reader.user_id)
    ).fetchone()
    assert row == {"last_read_seq": TOTAL}


@pytest.fixture
def frozen_replica(chatflow_env: dict[str, str]) -> Iterator[Container]:
    """A container whose reader endpoint never catches up: a second, migrated but empty database.

    Shows which paths read the reader (they see nothing) and which need the writer.
    """
    import secrets

    from chatflow.adapters.postgres.migrate import migrate
    from chatflow.settings import get_settings
    from tests.conftest import ADMIN_URL, _db_url

    name = f"chatflow_r_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _db_url(name)
    migrate(url)
    container = Container(replace(get_settings(), database_reader_url=url))
    try:
        yield container
    finally:
        container.close()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_reader_writer_split(db: DB, owner: Identity, frozen_replica: Container) -> None:
    rooms, messages = frozen_replica.rooms, frozen_replica.messages
    assert frozen_replica.settings.database_reader_url is not None
    replica_url = frozen_replica.settings.database_reader_url
    room = rooms.create_channel(owner, "public", f"split-{uuid4().hex[:8]}").room.id
    bob = insert_user(db)
    # Writes, authorization and read-your-writes responses use the writer.
    assert rooms.join(bob, room).membership is not None
    message, _ = messages.send(bob, room, "split-1", "hello")
    assert message.seq == 1
    assert rooms.get_room(bob, room).room.id == room  # falls back to the writer
    assert messages.mark_read(owner, room, 1) == 1
    # Lists and history come from the reader, which has not seen anything yet.
    assert rooms.list_my_rooms(bob).items == []
    with pytest.raises(NotFound):
        messages.history(bob, room)
    # "Replication" catches up: the reader now answers.
    with psycopg.connect(replica_url, autocommit=True) as replica:
        replica.execute(
            "INSERT INTO users (id, handle, display_name, password_hash) VALUES (%s, %s, 'B', 'x')",
            (bob.user_id, bob.handle),
        )
        replica.execute(
            "INSERT INTO rooms (id, kind, name, created_by, last_seq) VALUES (%s, 'public', 'r', %s, 1)",
            (room, bob.user_id),
        )
        replica.execute(
            """INSERT INTO messages (room_id, seq, id, sender_id, client_message_id, body)
               VALUES (%s, 1, %s, %s, 'split-1', 'hello')""",
            (room, message.id, bob.user_id),
        )
    assert [m.id for m in messages.history(bob, room).messages] == [message.id]
