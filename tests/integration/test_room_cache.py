"""Room cache on the real Redis: read-through, invalidation on every membership change, races."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
import redis

from chatflow.adapters.redis_cache import RedisRoomCache, RoomCacheKeys
from chatflow.adapters.redis_client import RedisConnection
from chatflow.container import Container
from chatflow.domain.identity import Identity
from chatflow.domain.messages import MessageService
from chatflow.domain.rooms import RoomService
from chatflow.errors import Forbidden, NotFound, Unavailable
from tests.support.events import flush_relay_replaced
from tests.support.rooms import insert_user

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def keys(chat: Container) -> RoomCacheKeys:
    return RoomCacheKeys(chat.redis)


def _channel(rooms: RoomService, owner: Identity, kind: str = "public") -> UUID:
    return rooms.create_channel(owner, kind, f"c-{uuid4().hex[:8]}").room.id  # type: ignore[arg-type]


def test_member_ids_read_through_with_ttl(
    keys: RoomCacheKeys, rooms: RoomService, db: DB, rds: redis.Redis[str], owner: Identity
) -> None:
    room = _channel(rooms, owner)
    member = insert_user(db)
    rooms.join(member, room)
    assert rds.exists(keys.room_members(room)) == 0
    assert set(rooms.member_ids(room)) == {owner.user_id, member.user_id}
    assert rds.exists(keys.room_members(room)) == 1
    from chatflow.settings import get_settings

    assert 0 < rds.ttl(keys.room_members(room)) <= get_settings().room_cache_ttl_s
    # A hit does not touch Postgres: a row inserted behind the cache's back is not seen...
    sneaky = insert_user(db)
    db.execute("INSERT INTO memberships (room_id, user_id) VALUES (%s, %s)", (room, sneaky.user_id))
    assert sneaky.user_id not in rooms.member_ids(room)
    # ...until an invalidation (here: a regular join through the domain).
    rooms.join(insert_user(db), room)
    assert sneaky.user_id in rooms.member_ids(room)


def test_removed_member_loses_access_at_once(
    keys: RoomCacheKeys,
    rooms: RoomService,
    messages: MessageService,
    db: DB,
    rds: redis.Redis[str],
    owner: Identity,
) -> None:
    room = _channel(rooms, owner, "private")
    bob = insert_user(db)
    rooms.add_member(owner, room, user_id=bob.user_id)
    messages.send(owner, room, "c-1", "hi bob")
    assert len(messages.history(bob, room).messages) == 1  # fills the cache
    assert rds.sismember(keys.room_members(room), str(bob.user_id))
    rooms.remove_member(owner, room, bob.user_id)
    assert rds.exists(keys.room_members(room)) == 0
    with pytest.raises(NotFound):
        messages.history(bob, room)
    with pytest.raises(NotFound):
        messages.send(bob, room, "c-2", "still here?")
    assert not rooms.is_member(room, bob.user_id)


class _AccessProbe:
    """Stands in for the outbox relay: records what the cache says about ``user`` in ``room``
    at the moment the after-commit flush runs (a PutEvents that may take seconds)."""

    def __init__(self, rooms: RoomService, room: UUID, user: UUID) -> None:
        self.rooms, self.room, self.user = rooms, room, user
        self.member_then: list[bool] = []

    def run_once(self, limit: int) -> Any:
        from chatflow.adapters.outbox_relay import RelayResult

        self.member_then.append(self.rooms.is_member(self.room, self.user))
        return RelayResult()


def test_membership_changes_reach_the_cache_before_the_outbox_flush(
    chat: Container, rooms: RoomService, db: DB, owner: Identity
) -> None:
    # A slow or unreachable bus must not keep a removed member in (nor a new one out): the
    # invalidation runs right after COMMIT, the best-effort flush after it.
    room = _channel(rooms, owner, "private")
    bob = insert_user(db)
    assert not rooms.is_member(room, bob.user_id)  # cached: bob is out
    probe = _AccessProbe(rooms, room, bob.user_id)
    with flush_relay_replaced(chat, probe):
        rooms.add_member(owner, room, user_id=bob.user_id)
        assert rooms.is_member(room, bob.user_id)  # cached again: bob is in
        rooms.remove_member(owner, room, bob.user_id)
    assert probe.member_then == [True, False]


def test_leave_and_join_invalidate(
    keys: RoomCacheKeys,
    rooms: RoomService,
    messages: MessageService,
    db: DB,
    rds: redis.Redis[str],
    owner: Identity,
) -> None:
    room = _channel(rooms, owner)
    bob = insert_user(db)
    assert not rooms.is_member(room, bob.user_id)  # caches the set without bob
    rooms.join(bob, room)
    assert rooms.is_member(room, bob.user_id)
    assert room in rooms.room_ids_for_user(bob.user_id)
    assert rds.exists(keys.user_rooms(bob.user_id)) == 1
    rooms.leave(bob, room)
    assert rds.exists(keys.user_rooms(bob.user_id)) == 0
    assert not rooms.is_member(room, bob.user_id)
    assert room not in rooms.room_ids_for_user(bob.user_id)
    with pytest.raises(Forbidden):
        messages.history(bob, room)


def test_dm_creation_invalidates_both_users(rooms: RoomService, db: DB, owner: Identity) -> None:
    peer = insert_user(db)
    assert rooms.room_ids_for_user(peer.user_id) == frozenset()  # cached empty set
    view, created = rooms.open_dm(owner, user_id=peer.user_id)
    assert created
    assert rooms.room_ids_for_user(peer.user_id) == {view.room.id}
    assert rooms.room_ids_for_user(owner.user_id) >= {view.room.id}


def test_keys_per_room_are_bounded(
    keys: RoomCacheKeys,
    rooms: RoomService,
    messages: MessageService,
    db: DB,
    rds: redis.Redis[str],
    owner: Identity,
    redis_prefix: str,
) -> None:
    room = _channel(rooms, owner)
    for _ in range(5):
        user = insert_user(db)
        rooms.join(user, room)
        messages.send(user, room, uuid4().hex, "hello")
        messages.history(user, room)
        rooms.leave(user, room)
        rooms.is_member(room, user.user_id)
    found = set(rds.scan_iter(match=f"{redis_prefix}room:{room}:*"))
    assert found <= {keys.room_meta(room), keys.room_members(room), keys.room_gen(room)}


def test_fill_racing_with_invalidation_is_not_stored(
    keys: RoomCacheKeys, chat: Container, rooms: RoomService, db: DB, rds: redis.Redis[str], owner: Identity
) -> None:
    """A read that loaded the old member set must not re-insert it after the invalidation."""
    room = _channel(rooms, owner)
    cache = chat.room_cache
    stale = {owner.user_id, uuid4()}

    def slow_load() -> set[UUID]:
        # The membership change commits and invalidates while this read is loading.
        cache.invalidate(room_ids=[room])
        return stale

    assert cache.member_ids(room, slow_load) == frozenset(stale)  # this request gets its read
    assert rds.exists(keys.room_members(room)) == 0  # but it is not cached
    assert cache.member_ids(room, lambda: {owner.user_id}) == {owner.user_id}
    assert rds.exists(keys.room_members(room)) == 1


def test_empty_member_set_is_cached(rds: redis.Redis[str], chat: Container) -> None:
    cache = chat.room_cache
    room = uuid4()
    calls: list[int] = []

    def load() -> list[UUID]:
        calls.append(1)
        return []

    assert cache.member_ids(room, load) == frozenset()
    assert cache.member_ids(room, load) == frozenset()
    assert calls == [1]


def test_redis_down_reads_fall_back_and_invalidation_fails_loudly(chat: Container) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(
        host="127.0.0.1",
        port=1,
        socket_connect_timeout=0.2,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    cache = RedisRoomCache(RedisConnection(chat.settings, client=dead), chat.settings)
    room, user = uuid4(), uuid4()
    assert cache.member_ids(room, lambda: [user]) == {user}
    assert cache.access(room, user, lambda: None, lambda: [user]) == (None, False)
    with pytest.raises(Unavailable):
        cache.invalidate(room_ids=[room])


class _RoundTrips:
    """Counts commands written to Redis sockets (a pipeline is one write = one round trip)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from redis.connection import AbstractConnection

        self.count = 0
        original = AbstractConnection.send_packed_command

        def counted(conn: Any, command: Any, check_health: bool = True) -> None:
            self.count += 1
            original(conn, command, check_health)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)


def test_cached_access_check_is_one_round_trip(
    chat: Container, rooms: RoomService, db: DB, owner: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = _channel(rooms, owner)
    for _ in range(20):
        rooms.join(insert_user(db), room)
    rooms.require_member(owner, room)  # fill meta + members
    trips = _RoundTrips(monkeypatch)
    for _ in range(5):
        rooms.require_member(owner, room)
    assert trips.count == 5

    # Invalidating several rooms and users is one MULTI/EXEC: one round trip.
    trips.count = 0
    chat.room_cache.invalidate(room_ids=[room, uuid4()], user_ids=[owner.user_id, uuid4(), uuid4()])
    assert trips.count == 1
    # After an invalidation the next check refills: a constant number of round trips.
    trips.count = 0
    rooms.require_member(owner, room)
    refill = trips.count
    trips.count = 0
    rooms.require_member(owner, room)
    assert trips.count == 1
    assert refill == 3  # pipelined check, WATCH, MULTI/EXEC
