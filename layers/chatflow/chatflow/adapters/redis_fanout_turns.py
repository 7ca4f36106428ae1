"""FanoutTurns over Redis: a sender's messages in a room are fanned out in ``seq`` order.

The sender's ack is posted BEFORE the room's fan-out (docs/protocol.md), so a client that sends
its next message as soon as the ack arrives may have that next message's fan-out start while the
previous one's is still running, in another execution environment. To keep the promise "one
``sendMessage`` in flight per room -> each recipient gets the live frames in that order", every
synchronous fan-out takes a ticket in a per (room, sender) queue BEFORE its ack is posted and
fans out only when it is the lowest ``seq`` in the queue:

* ``take``: one script: drop expired tickets, add ours (score = seq, expiring after
  ``ttl_ms``), answer whether ours is first -- the usual case, and then no further round trip.
* ``wait``: poll (1 -> 10 ms) until ours is first, or give up after ``timeout_s`` (a holder that
  crashed is forgotten when its ticket expires; order is then best effort, delivery still happens).
* ``release``: remove our ticket.

Keys ``rt:fo:{room}:{user}`` hold a handful of tickets and expire with the last one.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from chatflow.adapters.redis_client import RedisConnection

#: Tickets are members "seq:deadline_ms" scored by seq; expired ones are removed on every call.
_PRUNE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local deadline = tonumber(string.match(m, ':(%d+)$'))
  if deadline == nil or deadline < now_ms then redis.call('ZREM', KEYS[1], m) end
end
"""

_TAKE = (
    _PRUNE
    + """
local seq = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], seq, ARGV[1] .. ':' .. tostring(now_ms + ttl))
redis.call('PEXPIRE', KEYS[1], ttl)
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if tonumber(first[2]) >= seq then return 1 end
return 0
"""
)

_IS_FIRST = (
    _PRUNE
    + """
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] == nil or tonumber(first[2]) >= tonumber(ARGV[1]) then return 1 end
return 0
"""
)


class RedisFanoutTurns:
    """The FanoutTurns port (chatflow.domain.ports) on the container's Redis connection."""

    def __init__(self, redis: RedisConnection, *, ttl_ms: int = 5000) -> None:
        self._redis = redis
        self._ttl_ms = ttl_ms
        self._scripts: dict[str, Any] = {}

    def _script(self, name: str, source: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._redis.client.register_script(source)
            self._scripts[name] = script
        return script

    def _key(self, room_id: UUID, user_id: UUID) -> str:
        return self._redis.key("rt", "fo", f"{{{room_id}}}", str(user_id))

    def take(self, room_id: UUID, user_id: UUID, seq: int) -> bool:
        key = self._key(room_id, user_id)
        return bool(self._script("take", _TAKE)(keys=[key], args=[seq, self._ttl_ms]))

    def wait(self, room_id: UUID, user_id: UUID, seq: int, *, timeout_s: float) -> bool:
        key = self._key(room_id, user_id)
        is_first = self._script("is_first", _IS_FIRST)
        deadline = time.monotonic() + timeout_s
        pause = 0.001
        while True:
            if is_first(keys=[key], args=[seq]):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    def release(self, room_id: UUID, user_id: UUID, seq: int) -> None:
        self._redis.client.zremrangebyscore(self._key(room_id, user_id), seq, seq)
