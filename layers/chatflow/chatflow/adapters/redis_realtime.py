"""Realtime state in Redis: connection registry, presence, connection limits, rate limits, room
subscriptions.

Keys (all under the settings' prefix; ``{uid}`` is a Redis Cluster hash tag, so every key of one
user lives in one slot and the Lua scripts below stay single-slot):

``rt:u:{uid}:conns``          sorted set: connection id -> expiry (epoch ms). The registry.
``rt:u:{uid}:c:<cid>``        hash: userId, connectedAt, hardExpiry, iat (the session's token issue
                              time, epoch s); PEXPIREAT = its expiry.
``rt:u:{uid}:r:<cid>``        set: room ids this connection subscribed to (joinRoom).
``rt:u:{uid}:pv``             the user's presence version (see below).
``rt:room:<rid>:subs``        sorted set: "<uid>|<cid>" -> expiry (epoch ms). Live subscribers.
``rt:rl:<kind>:<cid>``        rate-limit state (GCRA theoretical arrival time, epoch ms).
``rt:epoch``                  a random id written (SET NX) when this registry first holds data; its
                              absence later means Redis lost its data (restart without
                              persistence, failover, flush): see :meth:`RedisRealtimeStore.epoch_lost`.
``rt:epoch:lost``             set for ``presence_ttl_s`` after a loss was detected.

Why expiry scores: ``$disconnect`` is best effort. Every connection carries an expiry
(``now + presence_ttl_s``, refreshed by ``ping``/activity, capped at ``connected_at +
connection_ttl_s``), readers ignore expired members and writers prune them ("pruned on
touch"). Nothing ever scans all connections: every operation touches the keys of the users or the
room at hand, so the cost grows with the room's size only.

The per-user connection limit is enforced inside one Lua script (check + add are atomic), so 50
simultaneous connects of one user yield exactly ``limit`` registrations.

Presence version: the scripts that can make a user go online (first connection) or offline
(last connection gone) decide it atomically with the registry change and, in the same script,
bump the user's presence version: ``max(previous + 1, now_ms)``. Versions therefore strictly
increase per user in the order of the transitions, even when the key expired or was evicted
(the clock floor); presence frames carry it so clients drop frames that arrive late
(docs/protocol.md). ``presence_is_current`` re-checks a transition right before it is announced.

Revoked sessions: :meth:`RedisRealtimeStore.delivery_targets` reads each user's live connections
WITH their session stamp (``iat``) and the user's cached status (IDENTITY's status cache key) in
ONE pipeline, so fan-out never posts to a session a ban / delete / logout-all revoked, even when
its registry entry survived a raced or failed termination (docs/auth.md, "Revocation").
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast
from uuid import UUID

import redis

from chatflow.adapters.redis_client import RedisConnection
from chatflow.adapters.redis_user_status import decode_status, status_key
from chatflow.domain.realtime_models import (
    DeliveryTargets,
    PresenceEntry,
    RateDecision,
    Registration,
    RemovedConnections,
    Target,
    Unregistration,
)
from chatflow.settings import Settings

Clock = Callable[[], float]

#: How long a presence version outlives the user's last transition. Expiry is harmless (the next
#: version is floored at the clock), this only keeps idle users from holding a key forever.
PRESENCE_VERSION_TTL_MS = 30 * 24 * 3600 * 1000

# Prune a user's expired connections (and their per-connection keys); shared by the scripts.
# ARGV[1] = now (ms), ARGV[2] = per-connection key prefix ("...:c:"), ARGV[3] = rooms key prefix.
_PRUNE = """
local function prune(zkey, now, cprefix, rprefix)
  local expired = redis.call('ZRANGEBYSCORE', zkey, '-inf', now)
  for _, c in ipairs(expired) do
    redis.call('DEL', cprefix .. c, rprefix .. c)
  end
  if #expired > 0 then
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
  end
  return expired
end
-- Next presence version: strictly greater than the last one, never below the clock (ms), so
-- an expired/evicted key cannot make versions go back.
local function bump_presence(vkey, now, ttl)
  local v = tonumber(redis.call('GET', vkey) or '0') + 1
  if v < now then v = now end
  redis.call('SET', vkey, string.format('%d', v), 'PX', ttl)
  return v
end
local function extend_zset(zkey)
  local last = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES')
  if #last == 2 then
    redis.call('PEXPIREAT', zkey, math.floor(tonumber(last[2])))
  end
end
"""

# KEYS[1] user's conns zset, KEYS[2] this connection's hash, KEYS[3] presence version
# ARGV[4] cid, ARGV[5] expiry ms, ARGV[6] hard expiry ms, ARGV[7] limit, ARGV[8] user id,
# ARGV[9] presence version ttl ms, ARGV[10] the session's token issue time (epoch s, "" unknown)
# -> {accepted, first, count, presence version (0 unless first)}
_REGISTER = (
    _PRUNE
    + """
local now = tonumber(ARGV[1])
prune(KEYS[1], now, ARGV[2], ARGV[3])
local cid = ARGV[4]
if redis.call('ZSCORE', KEYS[1], cid) then
  -- A retried $connect of the same connection: idempotent.
  return {1, 0, redis.call('ZCARD', KEYS[1]), 0}
end
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[7]) then
  return {0, 0, count, 0}
end
redis.call('ZADD', KEYS[1], ARGV[5], cid)
redis.call('HSET', KEYS[2], 'userId', ARGV[8], 'connectedAt', now, 'hardExpiry', ARGV[6])
if ARGV[10] ~= '' then redis.call('HSET', KEYS[2], 'iat', ARGV[10]) end
redis.call('PEXPIREAT', KEYS[2], ARGV[5])
extend_zset(KEYS[1])
if count == 0 then
  return {1, 1, 1, bump_presence(KEYS[3], now, tonumber(ARGV[9]))}
end
return {1, 0, count + 1, 0}
"""
)

# KEYS[1] conns zset, KEYS[2] connection hash, KEYS[3] connection's rooms set, KEYS[4] presence
# version; ARGV[4] cid, ARGV[5] presence version ttl ms, ARGV[6] grace ms: keep a connection
# registered less than this long ago (0: no grace)
# -> {removed, remaining, presence version (0 unless this removed the last), room ids...};
#    {0, -1, 0} when the connection was kept (within the grace window)
_UNREGISTER = (
    _PRUNE
    + """
local now = tonumber(ARGV[1])
local grace = tonumber(ARGV[6])
if grace > 0 then
  local since = tonumber(redis.call('HGET', KEYS[2], 'connectedAt') or '0')
  if since > 0 and now - since < grace then
    return {0, -1, 0}
  end
end
local removed = redis.call('ZREM', KEYS[1], ARGV[4])
local rooms = redis.call('SMEMBERS', KEYS[3])
redis.call('DEL', KEYS[2], KEYS[3])
prune(KEYS[1], now, ARGV[2], ARGV[3])
local remaining = redis.call('ZCARD', KEYS[1])
local version = 0
if removed == 1 and remaining == 0 then
  version = bump_presence(KEYS[4], now, tonumber(ARGV[5]))
end
local out = {removed, remaining, version}
for _, r in ipairs(rooms) do out[#out + 1] = r end
return out
"""
)

# KEYS[1] conns zset, KEYS[2] connection hash, KEYS[3] rooms set; ARGV[4] cid, ARGV[5] ttl ms
# -> {alive, expiry ms, room ids...}: alive 0 = unknown or expired connection.
_TOUCH = (
    _PRUNE
    + """
local now = tonumber(ARGV[1])
prune(KEYS[1], now, ARGV[2], ARGV[3])
if not redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  return {0, 0}
end
local hard = tonumber(redis.call('HGET', KEYS[2], 'hardExpiry') or '0')
local expiry = now + tonumber(ARGV[5])
if hard > 0 and hard < expiry then expiry = hard end
redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[4])
redis.call('PEXPIREAT', KEYS[2], expiry)
redis.call('PEXPIREAT', KEYS[3], expiry)
extend_zset(KEYS[1])
local out = {1, expiry}
for _, r in ipairs(redis.call('SMEMBERS', KEYS[3])) do out[#out + 1] = r end
return out
"""
)

# KEYS[1] conns zset, KEYS[2] presence version; ARGV[1] conn prefix, ARGV[2] rooms prefix,
# ARGV[3] now ms, ARGV[4] presence version ttl ms
# -> {presence version (0: nothing removed), cid, room ids of cid joined by ',', cid, rooms, ...}
# and deletes all.
_REMOVE_ALL = (
    _PRUNE
    + """
local now = tonumber(ARGV[3])
local cids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {0}
if #cids > 0 then out[1] = bump_presence(KEYS[2], now, tonumber(ARGV[4])) end
for _, c in ipairs(cids) do
  local rkey = ARGV[2] .. c
  out[#out + 1] = c
  out[#out + 1] = table.concat(redis.call('SMEMBERS', rkey), ',')
  redis.call('DEL', ARGV[1] .. c, rkey)
end
redis.call('DEL', KEYS[1])
return out
"""
)

# Presence snapshot of ONE user (single slot): KEYS[1] conns zset, KEYS[2] presence version;
# ARGV[1] now ms, ARGV[2] presence version ttl ms -> {live connections, presence version}.
# Read atomically, so an online user's version is the one of the transition that made them
# online (a snapshot never pairs "online" with an offline transition's version). An online user
# whose version key expired or was evicted gets a fresh one (floored at the clock, like every
# bump), so later transitions still outrank the snapshot's entry.
_SNAPSHOT = """
local now = tonumber(ARGV[1])
local live = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
if live == 0 then return {0, 0} end
local v = redis.call('GET', KEYS[2])
if not v then
  v = now
  redis.call('SET', KEYS[2], string.format('%d', v), 'PX', tonumber(ARGV[2]))
end
return {live, tonumber(v)}
"""

# KEYS[1] conns zset; ARGV[1] now ms, ARGV[2] per-connection key prefix
# -> {cid, iat ("" when not stamped), cid, iat, ...} of the live connections
_TARGETS = """
local cids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
local out = {}
for _, c in ipairs(cids) do
  out[#out + 1] = c
  out[#out + 1] = redis.call('HGET', ARGV[2] .. c, 'iat') or ''
end
return out
"""

# GCRA rate limit. KEYS[1] state key; ARGV now ms, window ms, limit
# -> {allowed, retry_after_ms}
_RATE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local interval = window / tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
-- Kept at full precision, compared with a microsecond of slack: rounding the state up to a
-- whole ms at every hit (window / limit is rarely whole) would shrink the burst below limit.
if allow_at - now > 0.001 then
  return {0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', math.ceil(new_tat - now) + 1)
return {1, 0}
"""


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class RedisRealtimeStore:
    """Registry, presence, subscriptions and rate limits over one redis-py client."""

    def __init__(self, redis: RedisConnection, settings: Settings, clock: Clock = time.time) -> None:
        self._redis = redis
        self._settings = settings
        self._clock = clock
        self._scripts: dict[str, Any] = {}
        #: This store already made sure the epoch key exists (once per container).
        self._epoch_set = False

    # --- plumbing --------------------------------------------------------------------------

    @property
    def client(self) -> redis.Redis[str]:
        return self._redis.client

    def _script(self, name: str, source: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            # register_script runs EVALSHA and falls back to EVAL once (NOSCRIPT), so a
            # container pays the upload once.
            script = self.client.register_script(source)
            self._scripts[name] = script
        return script

    def _k(self, *parts: object) -> str:
        return self._redis.key(*parts)

    def _user_zset(self, user_id: UUID) -> str:
        return self._k("rt", "u", f"{{{user_id}}}", "conns")

    def _conn_prefix(self, user_id: UUID) -> str:
        return self._k("rt", "u", f"{{{user_id}}}", "c", "")

    def _rooms_prefix(self, user_id: UUID) -> str:
        return self._k("rt", "u", f"{{{user_id}}}", "r", "")

    def _presence_version(self, user_id: UUID) -> str:
        return self._k("rt", "u", f"{{{user_id}}}", "pv")

    def _room_subs(self, room_id: UUID) -> str:
        return self._k("rt", "room", room_id, "subs")

    def _now_ms(self) -> int:
        return _ms(self._clock())

    def _common_args(self, user_id: UUID) -> list[object]:
        return [self._now_ms(), self._conn_prefix(user_id), self._rooms_prefix(user_id)]

    # --- registry --------------------------------------------------------------------------

    def register(
        self,
        user_id: UUID,
        connection_id: str,
        *,
        limit: int | None = None,
        session_issued_at: float | None = None,
    ) -> Registration:
        """Register a connection unless the user already has ``limit`` live ones (atomic).
        ``session_issued_at``: the token's ``iat``, stamped on the record so fan-out can skip a
        session revoked later (:meth:`delivery_targets`)."""
        s = self._settings
        limit = s.max_connections_per_user if limit is None else limit
        args = self._common_args(user_id)
        now = cast(int, args[0])
        hard = now + _ms(s.connection_ttl_s)
        expiry = min(now + _ms(s.presence_ttl_s), hard)
        res = self._script("register", _REGISTER)(
            keys=[
                self._user_zset(user_id),
                self._conn_prefix(user_id) + connection_id,
                self._presence_version(user_id),
            ],
            args=[
                *args,
                connection_id,
                expiry,
                hard,
                limit,
                str(user_id),
                PRESENCE_VERSION_TTL_MS,
                "" if session_issued_at is None else repr(float(session_issued_at)),
            ],
        )
        if not self._epoch_set:
            # Once per container: the registry now holds data, so its epoch must exist.
            self.client.set(self._epoch_key(), secrets.token_hex(8), nx=True)
            self._epoch_set = True
        return Registration(
            accepted=bool(res[0]), first=bool(res[1]), count=int(res[2]), presence_version=int(res[3])
        )

    def _epoch_key(self) -> str:
        return self._k("rt", "epoch")

    def epoch_lost(self) -> bool:
        """Did Redis lose the registry's data recently? Called when a frame finds its connection
        unregistered, to tell a loss from an expiry (one round trip). The first caller after a
        loss finds the epoch key gone and re-creates it (SET NX: one writer wins); it also leaves
        a marker for ``presence_ttl_s``, so the other connections re-registering after the same
        loss are told so too (any connection forgotten within that window may have been
        forgotten by the loss)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self._epoch_key(), secrets.token_hex(8), nx=True)
        pipe.exists(self._k("rt", "epoch", "lost"))
        created, marked = pipe.execute()
        if created:
            self.client.set(
                self._k("rt", "epoch", "lost"), str(self._now_ms()), ex=self._settings.presence_ttl_s
            )
        return bool(created) or bool(marked)

    def unregister(self, user_id: UUID, connection_id: str, *, grace_s: float = 0.0) -> Unregistration:
        """Remove a connection and its room subscriptions; tells whether it was the last one.
        ``grace_s``: keep it when it was registered less than that long ago (a 410 racing its
        ``$connect``: API Gateway refuses posts until ``$connect`` has returned)."""
        res = self._script("unregister", _UNREGISTER)(
            keys=[
                self._user_zset(user_id),
                self._conn_prefix(user_id) + connection_id,
                self._rooms_prefix(user_id) + connection_id,
                self._presence_version(user_id),
            ],
            args=[*self._common_args(user_id), connection_id, PRESENCE_VERSION_TTL_MS, _ms(grace_s)],
        )
        removed, remaining, version = bool(res[0]), int(res[1]), int(res[2])
        if remaining < 0:
            return Unregistration(removed=False, last=False, kept=True)
        rooms = tuple(UUID(r) for r in res[3:])
        if rooms:
            self._drop_subscriptions(user_id, connection_id, rooms)
        return Unregistration(
            removed=removed, last=removed and remaining == 0, rooms=rooms, presence_version=version
        )

    def touch(self, user_id: UUID, connection_id: str) -> bool:
        """Refresh the connection's (and its subscriptions') TTL; False if it is not registered."""
        res = self._script("touch", _TOUCH)(
            keys=[
                self._user_zset(user_id),
                self._conn_prefix(user_id) + connection_id,
                self._rooms_prefix(user_id) + connection_id,
            ],
            args=[*self._common_args(user_id), connection_id, _ms(self._settings.presence_ttl_s)],
        )
        if not res[0]:
            return False
        expiry, rooms = int(res[1]), res[2:]
        if rooms:
            member = f"{user_id}|{connection_id}"
            pipe = self.client.pipeline(transaction=False)
            for room in rooms:
                pipe.zadd(self._room_subs(room), {member: expiry}, xx=True)
            pipe.execute()
        return True

    def remove_all(self, user_id: UUID) -> RemovedConnections:
        """Remove every connection of the user (bans): the removed connection ids and, when there
        were any, the presence version of this "offline" transition."""
        res = self._script("remove_all", _REMOVE_ALL)(
            keys=[self._user_zset(user_id), self._presence_version(user_id)],
            args=[
                self._conn_prefix(user_id),
                self._rooms_prefix(user_id),
                self._now_ms(),
                PRESENCE_VERSION_TTL_MS,
            ],
        )
        version = int(res[0])
        cids: list[str] = []
        pipe = self.client.pipeline(transaction=False)
        for i in range(1, len(res), 2):
            cid, rooms = res[i], res[i + 1]
            cids.append(cid)
            for room in filter(None, rooms.split(",")):
                pipe.zrem(self._room_subs(room), f"{user_id}|{cid}")
        if len(pipe):
            pipe.execute()
        return RemovedConnections(tuple(cids), presence_version=version)

    def presence_is_current(self, user_id: UUID, version: int, *, online: bool) -> bool:
        """Is the transition that produced ``version`` still the user's latest, with the registry
        still agreeing (``online``: a live connection; offline: none)? Checked right before a
        presence announcement so a superseded one is not sent (one round trip)."""
        now = self._now_ms()
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self._presence_version(user_id))
        pipe.zcount(self._user_zset(user_id), f"({now}", "+inf")
        current, live = pipe.execute()
        if current is not None and int(current) != version:
            return False  # a newer transition happened; its own announcement supersedes this one
        return bool(live) == online

    def connections_of(self, user_ids: Iterable[UUID]) -> list[Target]:
        """Live connections of these users whose session is still valid (one round trip)."""
        return self.delivery_targets(user_ids).live

    def delivery_targets(self, user_ids: Iterable[UUID]) -> DeliveryTargets:
        """Live connections of these users, split by whether their session is still valid, in
        ONE pipeline round trip (no scans, no round trip per recipient): per user the live
        connections with their session stamp (``iat``) and the user's cached status.

        Revoked: the account is not active, or the stamp predates ``tokens_valid_after``
        (``UserStatus.admits``). A status-cache miss admits (every change writes the cache
        through, so a miss means no change within its TTL); an unstamped record (written before
        stamps existed) is judged by the status alone."""
        users = list(dict.fromkeys(user_ids))
        if not users:
            return DeliveryTargets([], [])
        now = self._now_ms()
        script = self._script("targets", _TARGETS)

        def build(pipe: Any) -> None:
            for uid in users:
                pipe.get(status_key(self._redis, uid))
                pipe.evalsha(script.sha, 1, self._user_zset(uid), now, self._conn_prefix(uid))

        results = self._pipeline_with_script(build, _TARGETS)
        live: list[Target] = []
        revoked: list[Target] = []
        for i, uid in enumerate(users):
            status = decode_status(results[2 * i])
            pairs = results[2 * i + 1]
            for j in range(0, len(pairs), 2):
                cid, iat = pairs[j], pairs[j + 1]
                valid = status is None or (status.admits(float(iat)) if iat else status.status == "active")
                (live if valid else revoked).append(Target(uid, cid))
        return DeliveryTargets(live, revoked)

    def _pipeline_with_script(self, build: Callable[[Any], None], source: str) -> list[Any]:
        """Run a plain pipeline that calls EVALSHA (redis-py's Script in a pipeline would add a
        SCRIPT EXISTS round trip per execute); the script is loaded once on NOSCRIPT."""
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            build(pipe)
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                cast(Any, self.client).script_load(source)  # redis-py leaves it untyped
        raise AssertionError("unreachable")

    def online_user_ids(self, user_ids: Iterable[UUID]) -> set[UUID]:
        """The users among ``user_ids`` with at least one live connection (one pipeline)."""
        users = list(dict.fromkeys(user_ids))
        if not users:
            return set()
        now = self._now_ms()
        pipe = self.client.pipeline(transaction=False)
        for uid in users:
            pipe.zcount(self._user_zset(uid), f"({now}", "+inf")
        counts = pipe.execute()
        return {uid for uid, n in zip(users, counts, strict=True) if n}

    def online_presence(self, user_ids: Iterable[UUID]) -> list[PresenceEntry]:
        """The users among ``user_ids`` with a live connection (any device), each with the
        presence version of their current "online" transition and their handle when the status
        cache has it. Two pipeline round trips: EXISTS of each user's registry key (a cheap
        filter: most members of a large room are offline), then, for those that have one, a
        single-slot script per user (live count + version, atomically) and the status GET."""
        candidates = list(dict.fromkeys(user_ids))
        if not candidates:
            return []
        pipe = self.client.pipeline(transaction=False)
        for uid in candidates:
            pipe.exists(self._user_zset(uid))
        users = [uid for uid, n in zip(candidates, pipe.execute(), strict=True) if n]
        if not users:
            return []
        script = self._script("snapshot", _SNAPSHOT)
        now = self._now_ms()
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for uid in users:
                keys = (self._user_zset(uid), self._presence_version(uid))
                pipe.evalsha(script.sha, 2, *keys, now, PRESENCE_VERSION_TTL_MS)
                pipe.get(status_key(self._redis, uid))
            try:
                results = pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                cast(Any, self.client).script_load(_SNAPSHOT)  # redis-py leaves it untyped
                continue
            break
        out: list[PresenceEntry] = []
        for i, uid in enumerate(users):
            (live, version), cached = results[2 * i], results[2 * i + 1]
            if int(live):
                status = decode_status(cached)
                out.append(PresenceEntry(uid, int(version), status.handle if status else None))
        return out

    # --- room subscriptions (joinRoom / leaveRoom) ------------------------------------------

    def subscribe(self, user_id: UUID, connection_id: str, room_id: UUID) -> bool:
        """Subscribe a registered connection to a room's live stream; False if not registered."""
        zkey = self._user_zset(user_id)
        expiry = self.client.zscore(zkey, connection_id)
        if expiry is None or expiry <= self._now_ms():
            return False
        rkey = self._rooms_prefix(user_id) + connection_id
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self._room_subs(room_id), {f"{user_id}|{connection_id}": int(expiry)})
        pipe.sadd(rkey, str(room_id))
        pipe.pexpireat(rkey, int(expiry))
        pipe.execute()
        return True

    def unsubscribe(self, user_id: UUID, connection_id: str, room_id: UUID) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(self._room_subs(room_id), f"{user_id}|{connection_id}")
        pipe.srem(self._rooms_prefix(user_id) + connection_id, str(room_id))
        pipe.execute()

    def subscribers(self, room_id: UUID) -> list[Target]:
        """Live subscriptions of a room; expired ones are pruned (one round trip)."""
        now = self._now_ms()
        key = self._room_subs(room_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zrangebyscore(key, f"({now}", "+inf")
        _, members = pipe.execute()
        out: list[Target] = []
        for member in members:
            uid, _, cid = member.partition("|")
            out.append(Target(UUID(uid), cid))
        return out

    def _drop_subscriptions(self, user_id: UUID, connection_id: str, rooms: Sequence[UUID]) -> None:
        """Remove the connection from the rooms' subscriber sets (its own rooms set is gone)."""
        pipe = self.client.pipeline(transaction=False)
        for room in rooms:
            pipe.zrem(self._room_subs(room), f"{user_id}|{connection_id}")
        pipe.execute()

    # --- rate limits -----------------------------------------------------------------------

    def hit_rate_limit(
        self,
        kind: str,
        connection_id: str,
        *,
        limit: int,
        window_s: float,
        with_status_of: UUID | None = None,
    ) -> RateDecision:
        """One event of ``kind`` on a connection: allowed unless it exceeds ``limit`` per window.

        GCRA (a token bucket in one key): smooth, atomic in one script, and it knows exactly
        when the next event would be allowed (``retry_after_ms``). ``with_status_of``: that
        user's cached status (IDENTITY's status cache key) is read in the same round trip and
        returned decoded as ``status``, and whether ``connection_id`` is still registered
        (``registered``: a frame of a forgotten connection re-registers it, see
        ``RealtimeService.rejoin``).
        """
        script = self._script("rate", _RATE)
        keys = [self._k("rt", "rl", kind, connection_id)]
        args = [self._now_ms(), _ms(window_s), max(1, limit)]
        if with_status_of is None:
            res = script(keys=keys, args=args)
            return RateDecision(allowed=bool(res[0]), retry_after_ms=int(res[1]))
        # A plain pipeline with EVALSHA (redis-py's Script in a pipeline would add a SCRIPT
        # EXISTS round trip per execute); the script is loaded once on NOSCRIPT.
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            pipe.get(status_key(self._redis, with_status_of))
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.zscore(self._user_zset(with_status_of), connection_id)
            try:
                read, res, expiry = pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                cast(Any, self.client).script_load(_RATE)  # redis-py leaves it untyped
                continue
            break
        return RateDecision(
            allowed=bool(res[0]),
            retry_after_ms=int(res[1]),
            status=decode_status(read),
            registered=expiry is not None and float(expiry) > args[0],
        )
