"""Redis implementation of :class:`chatflow.domain.ports.RoomCache`: room metadata and memberships.

Keys (all under the settings' prefix; at most three per room and two per user)::

    room:<id>:meta      string, JSON of the Room (kind, name, DM pair...)     TTL room_cache_ttl_s
    room:<id>:members   set of member user ids (+ a sentinel, so "no members" is cacheable)
    room:<id>:gen       generation counter, bumped by every invalidation
    user:<id>:rooms     set of room ids the user is a member of (+ sentinel)
    user:<id>:rooms:gen generation counter

Read-through: a hit costs one round trip. On a miss the loader (Postgres writer) runs while the
generation key is WATCHed, and the result is stored in a MULTI/EXEC that aborts if an
invalidation happened meanwhile -- so a read that raced with a membership change can never
re-insert the old member set after the change's invalidation (the classic stale-fill race); it
just is not cached.

Invalidation (after COMMIT, in the request that changed the data): one MULTI/EXEC that bumps
the generations and deletes the entries. The TTL is only a safety net.

Redis errors on reads fall back to the loader (slower, still correct); errors on invalidation
raise :class:`chatflow.errors.Unavailable` because a stale entry could outlive them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import redis
from redis.exceptions import RedisError, WatchError

from chatflow.adapters.redis_client import RedisConnection
from chatflow.domain.room_models import Room
from chatflow.errors import Unavailable
from chatflow.settings import Settings

log = logging.getLogger(__name__)

#: Stored in every cached set so that an empty set is distinguishable from a miss.
_SENTINEL = "-"
T = TypeVar("T")


def _room_to_json(room: Room) -> str:
    return json.dumps(
        {
            "id": str(room.id),
            "kind": room.kind,
            "name": room.name,
            "topic": room.topic,
            "created_by": str(room.created_by),
            "created_at": room.created_at.isoformat(),
            "dm_user_low": str(room.dm_user_low) if room.dm_user_low else None,
            "dm_user_high": str(room.dm_user_high) if room.dm_user_high else None,
        },
        separators=(",", ":"),
    )


def _room_from_json(raw: str) -> Room:
    data: dict[str, Any] = json.loads(raw)
    return Room(
        id=UUID(data["id"]),
        kind=data["kind"],
        name=data["name"],
        topic=data["topic"],
        created_by=UUID(data["created_by"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        dm_user_low=UUID(data["dm_user_low"]) if data["dm_user_low"] else None,
        dm_user_high=UUID(data["dm_user_high"]) if data["dm_user_high"] else None,
    )


def _ids(members: Iterable[str]) -> frozenset[UUID]:
    return frozenset(UUID(m) for m in members if m != _SENTINEL)


class RoomCacheKeys:
    """The key formats of ROOMS' cache (one definition for the cache and the directory below)."""

    def __init__(self, redis: RedisConnection) -> None:
        self._key = redis.key

    def room_meta(self, room_id: UUID) -> str:
        return self._key("room", room_id, "meta")

    def room_members(self, room_id: UUID) -> str:
        return self._key("room", room_id, "members")

    def room_gen(self, room_id: UUID) -> str:
        return self._key("room", room_id, "gen")

    def user_rooms(self, user_id: UUID) -> str:
        return self._key("user", user_id, "rooms")

    def user_rooms_gen(self, user_id: UUID) -> str:
        return self._key("user", user_id, "rooms", "gen")


class RedisRoomCache:
    def __init__(self, redis: RedisConnection, settings: Settings) -> None:
        self._connection = redis
        self.keys = RoomCacheKeys(redis)
        self._ttl = settings.room_cache_ttl_s

    @property
    def _redis(self) -> redis.Redis[str]:
        return self._connection.client

    @property
    def _gen_ttl(self) -> int:
        # Generations must outlive the entries they guard.
        return max(4 * self._ttl, 3600)

    # --- reads --------------------------------------------------------------------------------

    def _fill(self, gen_key: str, load: Callable[[], T], store: Callable[[Any, T], None]) -> T:
        """Run ``load`` with ``gen_key`` WATCHed; store its result unless an invalidation raced."""
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.watch(gen_key)
                value = load()
                pipe.multi()
                store(pipe, value)
                try:
                    pipe.execute()
                except WatchError:
                    log.debug("room cache fill for %s skipped: invalidated meanwhile", gen_key)
                return value
        except RedisError:
            log.warning("room cache unavailable; reading through to Postgres", exc_info=True)
            return load()

    def room(self, room_id: UUID, load: Callable[[], Room | None]) -> Room | None:
        meta_key = self.keys.room_meta(room_id)
        try:
            raw = self._redis.get(meta_key)
        except RedisError:
            log.warning("room cache unavailable; reading through to Postgres", exc_info=True)
            return load()
        if raw is not None:
            return _room_from_json(str(raw))

        def store(pipe: Any, room: Room | None) -> None:
            if room is not None:  # absent rooms are not cached (they may be created any time)
                pipe.set(meta_key, _room_to_json(room), ex=self._ttl)

        return self._fill(self.keys.room_gen(room_id), load, store)

    def access(
        self,
        room_id: UUID,
        user_id: UUID,
        load_room: Callable[[], Room | None],
        load_members: Callable[[], Iterable[UUID]],
    ) -> tuple[Room | None, bool]:
        members_key = self.keys.room_members(room_id)
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self.keys.room_meta(room_id))
                pipe.sismember(members_key, str(user_id))
                pipe.exists(members_key)
                raw, is_member, members_cached = pipe.execute()
        except RedisError:
            log.warning("room cache unavailable; reading through to Postgres", exc_info=True)
            room = load_room()
            return room, room is not None and user_id in set(load_members())
        if raw is not None and members_cached:
            return _room_from_json(str(raw)), bool(is_member)
        # A miss: load what is missing under ONE watch of the room's generation and store it in
        # one MULTI/EXEC (three round trips in all, whatever is missing).
        cached_room = _room_from_json(str(raw)) if raw is not None else None

        def load() -> tuple[Room | None, frozenset[UUID] | None]:
            room = cached_room if cached_room is not None else load_room()
            if room is None:
                return None, None
            return room, None if members_cached else frozenset(load_members())

        def store(pipe: Any, loaded: tuple[Room | None, frozenset[UUID] | None]) -> None:
            room, members = loaded
            if room is not None and cached_room is None:
                pipe.set(self.keys.room_meta(room_id), _room_to_json(room), ex=self._ttl)
            if members is not None:
                self._store_set(pipe, members_key, members)

        room, members = self._fill(self.keys.room_gen(room_id), load, store)
        if room is None:
            return None, False
        return room, (user_id in members) if members is not None else bool(is_member)

    def _store_set(self, pipe: Any, data_key: str, ids: frozenset[UUID]) -> None:
        pipe.delete(data_key)
        pipe.sadd(data_key, _SENTINEL, *(str(i) for i in ids))
        pipe.expire(data_key, self._ttl)

    def _set(self, data_key: str, gen_key: str, load: Callable[[], Iterable[UUID]]) -> frozenset[UUID]:
        try:
            members = self._redis.smembers(data_key)
        except RedisError:
            log.warning("room cache unavailable; reading through to Postgres", exc_info=True)
            return frozenset(load())
        if members:
            return _ids(str(m) for m in members)

        def store(pipe: Any, ids: frozenset[UUID]) -> None:
            self._store_set(pipe, data_key, ids)

        return self._fill(gen_key, lambda: frozenset(load()), store)

    def member_ids(self, room_id: UUID, load: Callable[[], Iterable[UUID]]) -> frozenset[UUID]:
        return self._set(self.keys.room_members(room_id), self.keys.room_gen(room_id), load)

    def room_ids(self, user_id: UUID, load: Callable[[], Iterable[UUID]]) -> frozenset[UUID]:
        return self._set(self.keys.user_rooms(user_id), self.keys.user_rooms_gen(user_id), load)

    # --- invalidation ---------------------------------------------------------------------------

    def invalidate(self, *, room_ids: Iterable[UUID] = (), user_ids: Iterable[UUID] = ()) -> None:
        gen_ttl = self._gen_ttl
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                for room_id in room_ids:
                    gen = self.keys.room_gen(room_id)
                    pipe.incr(gen)
                    pipe.expire(gen, gen_ttl)
                    pipe.delete(self.keys.room_meta(room_id), self.keys.room_members(room_id))
                for user_id in user_ids:
                    gen = self.keys.user_rooms_gen(user_id)
                    pipe.incr(gen)
                    pipe.expire(gen, gen_ttl)
                    pipe.delete(self.keys.user_rooms(user_id))
                pipe.execute()
        except RedisError as exc:
            log.error("room cache invalidation failed", exc_info=True)
            raise Unavailable("cache unavailable, retry", code="cache_unavailable") from exc


class CachedRoomDirectory:
    """RoomDirectory (REALTIME's view of ROOMS' member lists) over ROOMS' cached sets.

    Hits are read straight from the cache keys (the same SMEMBERS ROOMS' own read does), so the
    warm path of fan-out, presence and $disconnect imports neither psycopg nor ROOMS' domain (its
    pydantic event schemas): those functions stay light at cold start. A miss reads through the
    ``load_members`` / ``load_rooms`` the container wires to ROOMS' service, which fills the
    cache under its invalidation guard.
    """

    def __init__(
        self,
        redis: RedisConnection,
        load_members: Callable[[UUID], Collection[UUID]],
        load_rooms: Callable[[UUID], Collection[UUID]],
    ) -> None:
        self._redis = redis
        self._keys = RoomCacheKeys(redis)
        self._load_members = load_members
        self._load_rooms = load_rooms

    def member_ids(self, room_id: UUID) -> Collection[UUID]:
        cached = self._cached([self._keys.room_members(room_id)])[0]
        return cached if cached is not None else self._load_members(room_id)

    def room_ids(self, user_id: UUID) -> Collection[UUID]:
        cached = self._cached([self._keys.user_rooms(user_id)])[0]
        return cached if cached is not None else self._load_rooms(user_id)

    def members_of(self, room_ids: Collection[UUID]) -> dict[UUID, Collection[UUID]]:
        """Member ids of several rooms: ONE pipeline over the cached sets, read-through only for
        the rooms not cached. Presence on connect/disconnect touches every room of the user;
        this keeps it one round trip when the cache is warm."""
        ordered = list(room_ids)
        cached = self._cached([self._keys.room_members(r) for r in ordered])
        return {
            room_id: members if members is not None else self._load_members(room_id)
            for room_id, members in zip(ordered, cached, strict=True)
        }

    def members_among(self, room_id: UUID, user_ids: Collection[UUID]) -> set[UUID]:
        """Which of ``user_ids`` are members: ONE round trip (SMISMEMBER on the cached set, with
        its sentinel telling "cached" from "not cached"), so each fan-out job of a 5,000-member
        room checks its 500 ids instead of reading and parsing all 5,000. Read-through on a miss."""
        ids = list(user_ids)
        if not ids:
            return set()
        key = self._keys.room_members(room_id)
        try:
            flags = self._redis.client.smismember(key, [_SENTINEL, *(str(u) for u in ids)])  # type: ignore[no-untyped-call]
        except Exception:  # the cache is an optimisation; ROOMS' read-through handles outages
            log.warning("room cache read failed; reading through", exc_info=True)
            flags = []
        if flags and flags[0]:
            return {u for u, member in zip(ids, flags[1:], strict=True) if member}
        current = set(self._load_members(room_id))
        return {u for u in ids if u in current}

    def _cached(self, keys: list[str]) -> list[set[UUID] | None]:
        """The cached id sets at ``keys`` (one round trip); None where not cached or on error."""
        if not keys:
            return []
        try:
            pipe = self._redis.client.pipeline(transaction=False)
            for k in keys:
                pipe.smembers(k)
            results = pipe.execute()
        except Exception:  # the cache is an optimisation; ROOMS' read-through handles outages
            log.warning("room cache read failed; reading through", exc_info=True)
            return [None] * len(keys)
        # Cached sets always hold the sentinel, so an empty result means "not cached".
        return [{UUID(m) for m in members if m != _SENTINEL} if members else None for members in results]
