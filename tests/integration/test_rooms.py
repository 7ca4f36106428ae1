"""Rooms domain on real Postgres + Redis: DMs (idempotent, concurrent), ownership, outbox events."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID, uuid4

import psycopg
import pytest

from chatflow.domain.identity import Identity
from chatflow.domain.rooms import RoomService
from chatflow.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.support.rooms import insert_user, outbox_details, run_concurrently, set_status

DB = psycopg.Connection[dict[str, Any]]
T = TypeVar("T")


@pytest.fixture
def alice(db: DB, chat: None) -> Identity:
    return insert_user(db)


def test_create_channel_writes_room_owner_and_event(rooms: RoomService, db: DB, alice: Identity) -> None:
    view = rooms.create_channel(alice, "private", f"  Team {uuid4().hex[:6]}  ", "topic")
    assert view.room.name is not None
    assert not view.room.name.startswith(" ")
    row = db.execute("SELECT kind, member_count FROM rooms WHERE id = %s", (view.room.id,)).fetchone()
    assert row == {"kind": "private", "member_count": 1}
    role = db.execute("SELECT role FROM memberships WHERE room_id = %s", (view.room.id,)).fetchone()
    assert role == {"role": "owner"}
    [event] = outbox_details(db, "room.created", view.room.id)
    assert event["kind"] == "private"
    assert event["created_by"] == str(alice.user_id)


def test_concurrent_duplicate_names_one_wins(
    rooms: RoomService, alice: Identity, db: DB, wide_pool: None
) -> None:
    name = f"race-{uuid4().hex[:8]}"
    results = run_concurrently(
        4, lambda i: rooms.create_channel(alice, "public", name if i % 2 else name.upper())
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    count = db.execute("SELECT count(*) AS n FROM rooms WHERE lower(name) = %s", (name,)).fetchone()
    assert count == {"n": 1}


@pytest.mark.parametrize("name", ["", " ", "-leading", "a" * 81, "tab\there", None, 3])
def test_invalid_names(rooms: RoomService, alice: Identity, name: Any) -> None:
    with pytest.raises(InvalidInput):
        rooms.create_channel(alice, "public", name)


def test_dm_is_idempotent_in_both_directions(rooms: RoomService, db: DB, alice: Identity) -> None:
    bob = insert_user(db)
    first, created = rooms.open_dm(alice, user_id=bob.user_id)
    again, created_again = rooms.open_dm(alice, handle=bob.handle)
    reverse, created_reverse = rooms.open_dm(bob, user_id=alice.user_id)
    assert created
    assert not created_again
    assert not created_reverse
    assert first.room.id == again.room.id == reverse.room.id
    assert first.peer is not None
    assert first.peer.id == bob.user_id
    assert reverse.peer is not None
    assert reverse.peer.id == alice.user_id
    assert len(outbox_details(db, "room.created", first.room.id)) == 1
    [joined] = outbox_details(db, "member.joined", first.room.id)
    assert joined["user_id"] == str(bob.user_id)


def test_concurrent_dm_creation_converges(
    rooms: RoomService, db: DB, alice: Identity, wide_pool: None
) -> None:
    bob = insert_user(db)
    results = run_concurrently(
        6, lambda i: rooms.open_dm(alice if i % 2 else bob, user_id=(bob if i % 2 else alice).user_id)
    )
    assert not [r for r in results if isinstance(r, BaseException)]
    ids = {r[0].room.id for r in results if not isinstance(r, BaseException)}
    created = [r[1] for r in results if not isinstance(r, BaseException)]
    assert len(ids) == 1
    assert created.count(True) == 1
    [room_id] = ids
    members = db.execute("SELECT count(*) AS n FROM memberships WHERE room_id = %s", (room_id,)).fetchone()
    assert members == {"n": 2}
    assert len(outbox_details(db, "room.created", room_id)) == 1


def test_dm_refusals(rooms: RoomService, db: DB, alice: Identity) -> None:
    with pytest.raises(InvalidInput):
        rooms.open_dm(alice, user_id=alice.user_id)
    with pytest.raises(InvalidInput):
        rooms.open_dm(alice)
    with pytest.raises(NotFound):
        rooms.open_dm(alice, user_id=uuid4())
    with pytest.raises(NotFound):
        rooms.open_dm(alice, handle="@nobody-" + uuid4().hex[:6])
    banned = insert_user(db)
    set_status(db, banned.user_id, "banned")
    with pytest.raises(Forbidden):
        rooms.open_dm(alice, user_id=banned.user_id)
    gone = insert_user(db)
    set_status(db, gone.user_id, "deleted")
    with pytest.raises(NotFound):
        rooms.open_dm(alice, user_id=gone.user_id)


def test_dm_membership_is_fixed(rooms: RoomService, db: DB, alice: Identity) -> None:
    bob, carol = insert_user(db), insert_user(db)
    dm, _ = rooms.open_dm(alice, user_id=bob.user_id)
    with pytest.raises(Forbidden):
        rooms.leave(alice, dm.room.id)
    with pytest.raises(Forbidden):
        rooms.join(alice, dm.room.id)
    with pytest.raises(NotFound):
        rooms.join(carol, dm.room.id)
    with pytest.raises(Forbidden):
        rooms.add_member(alice, dm.room.id, user_id=carol.user_id)
    with pytest.raises(Forbidden):
        rooms.remove_member(alice, dm.room.id, bob.user_id)
    assert sorted(rooms.member_ids(dm.room.id)) == sorted([alice.user_id, bob.user_id])


def test_owner_leaving_hands_over_to_oldest_member(rooms: RoomService, db: DB, alice: Identity) -> None:
    room = rooms.create_channel(alice, "public", f"h-{uuid4().hex[:8]}").room.id
    bob, carol = insert_user(db), insert_user(db)
    rooms.join(bob, room)
    rooms.join(carol, room)
    rooms.leave(alice, room)
    roles = {
        r["user_id"]: r["role"]
        for r in db.execute("SELECT user_id, role FROM memberships WHERE room_id = %s", (room,))
    }
    assert roles == {bob.user_id: "owner", carol.user_id: "member"}
    assert db.execute("SELECT member_count FROM rooms WHERE id = %s", (room,)).fetchone() == {
        "member_count": 2
    }
    # The new owner manages members; the old one has no rights left.
    rooms.remove_member(bob, room, carol.user_id)
    with pytest.raises(Forbidden):
        rooms.add_member(alice, room, user_id=carol.user_id)
    left = outbox_details(db, "member.left", room)
    assert [(e["user_id"], e["removed_by"]) for e in left] == [
        (str(alice.user_id), None),
        (str(carol.user_id), str(bob.user_id)),
    ]


def test_last_member_cannot_leave_and_nothing_is_written(rooms: RoomService, db: DB, alice: Identity) -> None:
    room = rooms.create_channel(alice, "public", f"l-{uuid4().hex[:8]}").room.id
    with pytest.raises(Conflict):
        rooms.leave(alice, room)
    assert rooms.is_member(room, alice.user_id)
    assert outbox_details(db, "member.left", room) == []


def test_join_rules_and_events(rooms: RoomService, db: DB, alice: Identity) -> None:
    public = rooms.create_channel(alice, "public", f"j-{uuid4().hex[:8]}").room.id
    private = rooms.create_channel(alice, "private", f"j-{uuid4().hex[:8]}").room.id
    bob = insert_user(db)
    view = rooms.join(bob, public)
    assert view.membership is not None
    assert view.member_count == 2
    with pytest.raises(Conflict):
        rooms.join(bob, public)
    with pytest.raises(NotFound):
        rooms.join(bob, private)
    with pytest.raises(NotFound):
        rooms.join(bob, uuid4())
    rooms.add_member(alice, private, handle=bob.handle)
    assert [e["added_by"] for e in outbox_details(db, "member.joined", public)] == [None]
    assert [e["added_by"] for e in outbox_details(db, "member.joined", private)] == [str(alice.user_id)]


def test_get_room_visibility(rooms: RoomService, db: DB, alice: Identity) -> None:
    public = rooms.create_channel(alice, "public", f"v-{uuid4().hex[:8]}").room.id
    private = rooms.create_channel(alice, "private", f"v-{uuid4().hex[:8]}").room.id
    bob = insert_user(db)
    assert rooms.get_room(bob, public).membership is None
    with pytest.raises(NotFound):
        rooms.get_room(bob, private)
    with pytest.raises(Forbidden):
        rooms.require_member(bob, public)
    with pytest.raises(NotFound):
        rooms.require_member(bob, private)
    assert rooms.require_member(alice, private).id == private


def test_public_listing_is_keyset_paginated(rooms: RoomService, db: DB, alice: Identity) -> None:
    prefix = f"zz-list-{uuid4().hex[:6]}"
    made = {rooms.create_channel(alice, "public", f"{prefix}-{i:02d}").room.id for i in range(7)}
    rooms.create_channel(alice, "private", f"{prefix}-hidden")
    seen: list[UUID] = []
    names: list[str] = []
    cursor = None
    while True:
        page = rooms.list_public_rooms(alice, cursor, 3)
        seen += [v.room.id for v in page.items]
        names += [str(v.room.name) for v in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert made <= set(seen)
    assert len(seen) == len(set(seen))
    assert names == sorted(names, key=str.lower)
    assert not any(n.endswith("hidden") for n in names)
