"""Redis adapters of the ``UserStatusCache`` and ``LoginThrottle`` ports (chatflow.domain.ports).

Key ``<prefix>user:<id>:status`` -> ``status|tokens_valid_after|role|handle``. Changes write the
new value through (SET); cache fills after a Postgres read use SET NX, so a fill that raced with a
ban can never overwrite the ban's value. The TTL only bounds memory: correctness never waits on it.
"""

from __future__ import annotations

from uuid import UUID

from chatflow.adapters.redis_client import RedisConnection
from chatflow.domain.user_models import UserStatus

TTL_S = 3600
_STATUSES = frozenset({"active", "banned", "deleted"})
_ROLES = frozenset({"user", "admin"})


def status_key(redis: RedisConnection, user_id: UUID) -> str:
    """The cache key of a user's status (also for the realtime store, which reads it in the same
    pipeline as a frame's rate limit: chatflow.adapters.redis_realtime)."""
    return redis.key("user", user_id, "status")


def decode_status(raw: str | None) -> UserStatus | None:
    """A raw cached value as read at :func:`status_key` (None: not cached or unreadable)."""
    if raw is None:
        return None
    parts = str(raw).split("|", 3)
    if len(parts) != 4 or parts[0] not in _STATUSES or parts[2] not in _ROLES:
        return None  # unknown format (e.g. an older deploy): treat as a miss
    try:
        tva = float(parts[1])
    except ValueError:
        return None
    return UserStatus(status=parts[0], tokens_valid_after=tva, role=parts[2], handle=parts[3])  # type: ignore[arg-type]


def _encode(status: UserStatus) -> str:
    return f"{status.status}|{status.tokens_valid_after!r}|{status.role}|{status.handle}"


class RedisUserStatusCache:
    def __init__(self, redis: RedisConnection) -> None:
        self._redis = redis

    def get(self, user_id: UUID) -> UserStatus | None:
        return decode_status(self._redis.client.get(status_key(self._redis, user_id)))

    def fill(self, user_id: UUID, status: UserStatus) -> None:
        self._redis.client.set(status_key(self._redis, user_id), _encode(status), ex=TTL_S, nx=True)

    def put(self, user_id: UUID, status: UserStatus) -> None:
        self._redis.client.set(status_key(self._redis, user_id), _encode(status), ex=TTL_S)


class RedisLoginThrottle:
    """Fixed window of failed sign-ins per handle: ``<prefix>login:fail:<handle>`` (INCR + EXPIRE)."""

    def __init__(self, redis: RedisConnection, max_failures: int, window_s: int) -> None:
        self._redis = redis
        self.max_failures = max_failures
        self.window_s = window_s

    def _key(self, handle: str) -> str:
        return self._redis.key("login", "fail", handle)

    def retry_after(self, handle: str) -> int | None:
        client = self._redis.client
        raw = client.get(self._key(handle))
        if raw is None or int(str(raw)) < self.max_failures:
            return None
        ttl = int(client.ttl(self._key(handle)))
        return max(ttl, 1)

    def record_failure(self, handle: str) -> None:
        pipe = self._redis.client.pipeline()
        pipe.incr(self._key(handle))
        pipe.expire(self._key(handle), self.window_s, nx=True)  # the window starts at the first failure
        pipe.execute()

    def reset(self, handle: str) -> None:
        self._redis.client.delete(self._key(handle))
