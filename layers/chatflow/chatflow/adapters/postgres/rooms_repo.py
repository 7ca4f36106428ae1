"""Postgres implementation of :class:`chatflow.domain.ports.RoomRepository` (rooms and memberships).

Writes: one writer transaction each, the room row locked ``FOR NO KEY UPDATE`` first so that
membership changes of one room are serialized with each other and with sends (a send that
locked the room before a removal commits before it; one that locks after sees the removal),
the domain's ``check`` run on the locked rows, events enqueued in the outbox, then COMMIT and
the outbox flush. ``FOR NO KEY UPDATE`` rather than ``FOR UPDATE``: it excludes other
writers of the row just the same, but does not block the ``FOR KEY SHARE`` locks that foreign
keys (messages, memberships -> rooms) take.

Reads that tolerate lag (room views, lists) use the reader pool; lookups that authorize or fill
the cache use the writer (read-your-writes).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import psycopg
from psycopg.rows import DictRow

from chatflow.adapters.postgres import outbox
from chatflow.adapters.postgres.pool import PostgresPools
from chatflow.domain.ports import RoomCheck
from chatflow.domain.room_models import Membership, Page, PeerUser, Room, RoomView, UserRef
from chatflow.domain.validation import is_utf8_text
from chatflow.errors import Conflict, InvalidInput, NotFound
from chatflow.events.schemas import DomainEvent
from chatflow.settings import Settings

Row = dict[str, Any]

ROOM_COLUMNS = "r.id, r.kind, r.name, r.topic, r.created_by, r.created_at, r.dm_user_low, r.dm_user_high"


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def room_from_row(row: Row) -> Room:
    return Room(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        topic=row["topic"],
        created_by=row["created_by"],
        created_at=utc(row["created_at"]),
        dm_user_low=row["dm_user_low"],
        dm_user_high=row["dm_user_high"],
    )


def membership_from_row(row: Row, room_id: UUID, user_id: UUID) -> Membership | None:
    """The ``m_*`` columns of a LEFT JOIN on memberships (None when there is no row)."""
    if row.get("m_role") is None:
        return None
    return Membership(
        room_id=room_id,
        user_id=user_id,
        role=row["m_role"],
        last_read_seq=row["m_last_read_seq"],
        joined_at=utc(row["m_joined_at"]),
    )


@contextmanager
def write_transaction(
    pools: PostgresPools, after_commit: Callable[[], object]
) -> Iterator[psycopg.Connection[DictRow]]:
    """A writer transaction; after COMMIT, ``after_commit`` (the outbox flush, best effort)."""
    with pools.writer().connection() as conn, conn.transaction():
        yield conn
    # Outside the `with`: the transaction committed and the connection went back to the pool.
    after_commit()


def lock_room(
    conn: psycopg.Connection[DictRow], room_id: UUID, actor_id: UUID
) -> tuple[Room, Membership | None, Row]:
    """Lock the room row and read the actor's membership with it (one round trip)."""
    row = conn.execute(
        f"""SELECT {ROOM_COLUMNS}, r.last_seq,
                   m.role AS m_role, m.last_read_seq AS m_last_read_seq, m.joined_at AS m_joined_at
              FROM rooms r
              LEFT JOIN memberships m ON m.room_id = r.id AND m.user_id = %(actor)s
             WHERE r.id = %(room)s
               FOR NO KEY UPDATE OF r""",  # noqa: S608 -- fixed column list, values are bound
        {"room": room_id, "actor": actor_id},
    ).fetchone()
    if row is None:
        raise NotFound("room not found", code="room_not_found")
    return room_from_row(row), membership_from_row(row, room_id, actor_id), row


# --- keyset cursors (opaque to clients) ----------------------------------------------------------


def encode_cursor(values: Sequence[str]) -> str:
    return (
        base64.urlsafe_b64encode(json.dumps(list(values), separators=(",", ":")).encode())
        .decode()
        .rstrip("=")
    )


def decode_cursor(cursor: str, size: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput("malformed cursor", code="invalid_cursor") from None
    if (
        not isinstance(values, list)
        or len(values) != size
        or not all(isinstance(v, str) and is_utf8_text(v) for v in values)
    ):
        raise InvalidInput("malformed cursor", code="invalid_cursor")
    return cast(list[str], values)


def _cursor_uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInput("malformed cursor", code="invalid_cursor") from None


_VIEW_SELECT = f"""
    SELECT {ROOM_COLUMNS}, r.last_seq, r.member_count,
           m.role AS m_role, m.last_read_seq AS m_last_read_seq, m.joined_at AS m_joined_at,
           p.id AS peer_id, p.handle AS peer_handle, p.display_name AS peer_display_name
"""
_PEER_JOIN = """
    LEFT JOIN users p ON r.kind = 'dm'
         AND p.id = CASE WHEN r.dm_user_low = %(user)s THEN r.dm_user_high ELSE r.dm_user_low END
"""


def _view_from_row(row: Row, user_id: UUID) -> RoomView:
    room = room_from_row(row)
    peer = None
    if row.get("peer_id") is not None:
        peer = PeerUser(id=row["peer_id"], handle=row["peer_handle"], display_name=row["peer_display_name"])
    return RoomView(
        room=room,
        last_seq=row["last_seq"],
        member_count=row["member_count"],
        membership=membership_from_row(row, room.id, user_id),
        peer=peer,
    )


class PostgresRoomRepository:
    """Rooms and memberships on the writer/reader pools (see the module docstring)."""

    def __init__(self, pools: PostgresPools, settings: Settings, after_commit: Callable[[], object]) -> None:
        self._pools = pools
        self._source = settings.event_source
        #: The caps (docs/data-model.md, "Caps"): enforced inside the transaction that adds.
        self._max_members_per_room = settings.max_members_per_room
        self._max_rooms_per_user = settings.max_rooms_per_user
        #: Runs after every write transaction's COMMIT: the container's outbox flush.
        self._after_commit = after_commit

    def _check_caps(
        self, conn: psycopg.Connection[DictRow], joining: Sequence[UUID], room_id: UUID | None = None
    ) -> None:
        """Refuse (409) a membership that would pass a cap: ``room_full`` when the room (locked by
        the caller) already has ``max_members_per_room`` members, ``too_many_rooms`` when a
        joining user is already in ``max_rooms_per_user`` rooms. The joining users' rows are
        locked first (in id order, so two transactions never wait on each other), so two joins
        of one user at once cannot both take the last place."""
        if room_id is not None:
            row = conn.execute("SELECT member_count FROM rooms WHERE id = %s", (room_id,)).fetchone()
            if row is not None and row["member_count"] + len(joining) > self._max_members_per_room:
                limit = self._max_members_per_room
                raise Conflict(f"the room is full: at most {limit} members", code="room_full", limit=limit)
        users = sorted(set(joining), key=str)
        for user_id in users:
            conn.execute("SELECT 1 FROM users WHERE id = %s FOR NO KEY UPDATE", (user_id,))
        full = conn.execute(
            """SELECT user_id FROM memberships WHERE user_id = ANY(%s)
                GROUP BY user_id HAVING count(*) >= %s""",
            (users, self._max_rooms_per_user),
        ).fetchall()
        if full:
            limit = self._max_rooms_per_user
            raise Conflict(f"a user can be in at most {limit} rooms", code="too_many_rooms", limit=limit)

    # --- writer lookups ----------------------------------------------------------------------

    def find_room(self, room_id: UUID) -> Room | None:
        with self._pools.writer().connection() as conn:
            row = conn.execute(f"SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = %s", (room_id,)).fetchone()  # noqa: S608
        return None if row is None else room_from_row(row)

    def member_ids(self, room_id: UUID) -> list[UUID]:
        with self._pools.writer().connection() as conn:
            rows = conn.execute("SELECT user_id FROM memberships WHERE room_id = %s", (room_id,)).fetchall()
        return [r["user_id"] for r in rows]

    def room_ids_for_user(self, user_id: UUID) -> list[UUID]:
        with self._pools.writer().connection() as conn:
            rows = conn.execute("SELECT room_id FROM memberships WHERE user_id = %s", (user_id,)).fetchall()
        return [r["room_id"] for r in rows]

    def find_user(self, *, user_id: UUID | None = None, handle: str | None = None) -> UserRef | None:
        with self._pools.writer().connection() as conn:
            if user_id is not None:
                row = conn.execute(
                    "SELECT id, handle, status FROM users WHERE id = %s", (user_id,)
                ).fetchone()
            elif handle is not None:
                row = conn.execute(
                    "SELECT id, handle, status FROM users WHERE lower(handle) = lower(%s)", (handle,)
                ).fetchone()
            else:
                raise ValueError("user_id or handle required")
        return None if row is None else UserRef(id=row["id"], handle=row["handle"], status=row["status"])

    # --- reader views ------------------------------------------------------------------------

    def room_view(self, room_id: UUID, user_id: UUID, *, consistent: bool = False) -> RoomView | None:
        pool = self._pools.writer() if consistent else self._pools.reader()
        with pool.connection() as conn:
            row = conn.execute(
                _VIEW_SELECT
                + """ FROM rooms r
                      LEFT JOIN memberships m ON m.room_id = r.id AND m.user_id = %(user)s"""
                + _PEER_JOIN
                + " WHERE r.id = %(room)s",
                {"room": room_id, "user": user_id},
            ).fetchone()
        return None if row is None else _view_from_row(row, user_id)

    def list_member_rooms(self, user_id: UUID, cursor: str | None, limit: int) -> Page[RoomView]:
        params: dict[str, Any] = {"user": user_id, "limit": limit + 1}
        keyset = ""
        if cursor is not None:
            joined, room = decode_cursor(cursor, 2)
            try:
                params["joined"] = datetime.fromisoformat(joined)
            except ValueError:
                raise InvalidInput("malformed cursor", code="invalid_cursor") from None
            params["after_room"] = _cursor_uuid(room)
            keyset = " AND (m.joined_at, m.room_id) > (%(joined)s, %(after_room)s)"
        with self._pools.reader().connection() as conn:
            rows = conn.execute(
                _VIEW_SELECT
                + " FROM memberships m JOIN rooms r ON r.id = m.room_id"
                + _PEER_JOIN
                + " WHERE m.user_id = %(user)s"
                + keyset
                + " ORDER BY m.joined_at, m.room_id LIMIT %(limit)s",
                params,
            ).fetchall()
        views = [_view_from_row(r, user_id) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = views[-1]
            assert last.membership is not None
            next_cursor = encode_cursor([last.membership.joined_at.isoformat(), str(last.room.id)])
        return Page(items=views, next_cursor=next_cursor)

    def list_public_rooms(self, user_id: UUID, cursor: str | None, limit: int) -> Page[RoomView]:
        params: dict[str, Any] = {"user": user_id, "limit": limit + 1}
        keyset = ""
        if cursor is not None:
            name, room = decode_cursor(cursor, 2)
            params["after_name"] = name
            params["after_room"] = _cursor_uuid(room)
            keyset = " AND (lower(r.name), r.id) > (%(after_name)s, %(after_room)s)"
        with self._pools.reader().connection() as conn:
            rows = conn.execute(
                _VIEW_SELECT
                + """ FROM rooms r
                      LEFT JOIN memberships m ON m.room_id = r.id AND m.user_id = %(user)s"""
                + _PEER_JOIN
                + " WHERE r.kind = 'public'"
                + keyset
                + " ORDER BY lower(r.name), r.id LIMIT %(limit)s",
                params,
            ).fetchall()
        views = [_view_from_row(r, user_id) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor([str(last["name"]).lower(), str(last["id"])])
        return Page(items=views, next_cursor=next_cursor)

    # --- writes --------------------------------------------------------------------------------

    def create_channel(self, room: Room, events: Sequence[DomainEvent]) -> None:
        try:
            with write_transaction(self._pools, self._after_commit) as conn:
                self._check_caps(conn, [room.created_by])
                conn.execute(
                    """INSERT INTO rooms (id, kind, name, topic, created_by, created_at)
                       VALUES (%s, %s, %s, %s, %s, %s)""",
                    (room.id, room.kind, room.name, room.topic, room.created_by, room.created_at),
                )
                conn.execute(
                    """INSERT INTO memberships (room_id, user_id, role, joined_at)
                       VALUES (%s, %s, 'owner', %s)""",
                    (room.id, room.created_by, room.created_at),
                )
                outbox.enqueue_many(conn, events, source=self._source)
        except psycopg.errors.UniqueViolation as exc:
            # Names are unique among public rooms, and among one creator's private rooms
            # (migration 0060): a 409 never says anything about someone else's private room.
            if exc.diag.constraint_name == "rooms_public_name_key":
                raise Conflict("a public channel with this name already exists", code="name_taken") from None
            if exc.diag.constraint_name == "rooms_private_name_key":
                raise Conflict("you have a private channel with this name", code="name_taken") from None
            raise

    def get_or_create_dm(self, room: Room, events: Sequence[DomainEvent]) -> tuple[Room, bool]:
        assert room.dm_user_low is not None
        assert room.dm_user_high is not None
        created = False
        with write_transaction(self._pools, self._after_commit) as conn:
            # The partial unique index makes concurrent creators converge: the loser's INSERT
            # waits for the winner's COMMIT, then does nothing.
            inserted = conn.execute(
                """INSERT INTO rooms
                          (id, kind, name, topic, created_by, created_at, dm_user_low, dm_user_high)
                   VALUES (%s, 'dm', NULL, '', %s, %s, %s, %s)
                   ON CONFLICT (dm_user_low, dm_user_high) WHERE kind = 'dm' DO NOTHING
                   RETURNING id""",
                (room.id, room.created_by, room.created_at, room.dm_user_low, room.dm_user_high),
            ).fetchone()
            if inserted is not None:
                created = True
                self._check_caps(conn, [room.dm_user_low, room.dm_user_high])
                conn.execute(
                    """INSERT INTO memberships (room_id, user_id, role, joined_at)
                       VALUES (%s, %s, 'member', %s), (%s, %s, 'member', %s)""",
                    (room.id, room.dm_user_low, room.created_at, room.id, room.dm_user_high, room.created_at),
                )
                outbox.enqueue_many(conn, events, source=self._source)
                existing = room
            else:
                row = conn.execute(
                    f"""SELECT {ROOM_COLUMNS} FROM rooms r
                         WHERE r.kind = 'dm' AND r.dm_user_low = %s AND r.dm_user_high = %s""",  # noqa: S608
                    (room.dm_user_low, room.dm_user_high),
                ).fetchone()
                assert row is not None, "conflicting DM row vanished"
                existing = room_from_row(row)
        return existing, created

    def add_member(
        self, room_id: UUID, user_id: UUID, actor_id: UUID, check: RoomCheck, events: Sequence[DomainEvent]
    ) -> None:
        with write_transaction(self._pools, self._after_commit) as conn:
            room, actor, _ = lock_room(conn, room_id, actor_id)
            check(room, actor)
            if conn.execute(
                "SELECT 1 FROM memberships WHERE room_id = %s AND user_id = %s", (room_id, user_id)
            ).fetchone():
                raise Conflict("already a member", code="already_member")
            self._check_caps(conn, [user_id], room_id)
            added = conn.execute(
                """INSERT INTO memberships (room_id, user_id, role) VALUES (%s, %s, 'member')
                   ON CONFLICT (room_id, user_id) DO NOTHING RETURNING user_id""",
                (room_id, user_id),
            ).fetchone()
            if added is None:
                raise Conflict("already a member", code="already_member")
            outbox.enqueue_many(conn, events, source=self._source)

    def remove_member(
        self, room_id: UUID, user_id: UUID, actor_id: UUID, check: RoomCheck, events: Sequence[DomainEvent]
    ) -> UUID | None:
        new_owner: UUID | None = None
        with write_transaction(self._pools, self._after_commit) as conn:
            room, actor, _ = lock_room(conn, room_id, actor_id)
            check(room, actor)
            removed = conn.execute(
                "DELETE FROM memberships WHERE room_id = %s AND user_id = %s RETURNING role",
                (room_id, user_id),
            ).fetchone()
            if removed is None:
                raise NotFound("not a member of this room", code="not_a_member")
            if removed["role"] == "owner":
                heir = conn.execute(
                    """SELECT user_id FROM memberships WHERE room_id = %s
                        ORDER BY joined_at, user_id LIMIT 1""",
                    (room_id,),
                ).fetchone()
                if heir is None:
                    # Rolls the DELETE back: a channel always keeps its owner.
                    raise Conflict(
                        "the last member cannot leave the room (it would have no owner)", code="last_member"
                    )
                new_owner = heir["user_id"]
                conn.execute(
                    "UPDATE memberships SET role = 'owner' WHERE room_id = %s AND user_id = %s",
                    (room_id, new_owner),
                )
            outbox.enqueue_many(conn, events, source=self._source)
        return new_owner

    def mark_read(self, room_id: UUID, user_id: UUID, seq: int) -> int | None:
        # GREATEST is evaluated against the latest row version even under a concurrent update
        # (EvalPlanQual), so the position never moves backwards; LEAST bounds it by last_seq.
        with self._pools.writer().connection() as conn:
            row = conn.execute(
                """UPDATE memberships m
                      SET last_read_seq = GREATEST(m.last_read_seq, LEAST(%s, r.last_seq))
                     FROM rooms r
                    WHERE r.id = m.room_id AND m.room_id = %s AND m.user_id = %s
                RETURNING m.last_read_seq""",
                (seq, room_id, user_id),
            ).fetchone()
        return None if row is None else int(row["last_read_seq"])
