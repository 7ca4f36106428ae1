"""Redis adapter of :class:`chatflow.ports.UserStatusCache`.

Key ``<prefix>user:<id>:status`` -> ``status|tokens_valid_after|role|handle``. Changes write the
new value through (SET); cache fills after a Postgres read use SET NX, so a fill that raced with a
ban can never overwrite the ban's value. The TTL only bounds memory: correctness never waits on it.
"""

from __future__ import annotations

from uuid import UUID

from chatflow.adapters.redis_client import get_redis, key
from chatflow.domain.users import UserStatus

TTL_S = 3600
_STATUSES = frozenset({"active", "banned", "deleted"})
_ROLES = frozenset({"user", "admin"})


def status_key(user_id: UUID) -> str:
    """The cache key of a user's status (also for callers that read it in their own pipeline and
    hand the decoded value to ``ensure_active(identity, cached=...)``)."""
    return key("user", user_id, "status")


def decode_status(raw: str | None) -> UserStatus | None:
    """A raw cached value as read at :func:`status_key` (None: not cached or unreadable)."""
    return _decode(str(raw)) if raw is not None else None


def _encode(status: UserStatus) -> str:
    return f"{status.status}|{status.tokens_valid_after!r}|{status.role}|{status.handle}"


def _decode(raw: str) -> UserStatus | None:
    parts = raw.split("|", 3)
    if len(parts) != 4 or parts[0] not in _STATUSES or parts[2] not in _ROLES:
        return None  # unknown format (e.g. an older deploy): treat as a miss
    try:
        tva = float(parts[1])
    except ValueError:
        return None
    return UserStatus(status=parts[0], tokens_valid_after=tva, role=parts[2], handle=parts[3])  # type: ignore[arg-type]


class RedisUserStatusCache:
    def get(self, user_id: UUID) -> UserStatus | None:
        return decode_status(get_redis().get(status_key(user_id)))

    def fill(self, user_id: UUID, status: UserStatus) -> None:
        get_redis().set(status_key(user_id), _encode(status), ex=TTL_S, nx=True)

    def put(self, user_id: UUID, status: UserStatus) -> None:
        get_redis().set(status_key(user_id), _encode(status), ex=TTL_S)

    def forget(self, user_id: UUID) -> None:
        get_redis().delete(status_key(user_id))


class RedisLoginThrottle:
    """Fixed window of failed sign-ins per handle: ``<prefix>login:fail:<handle>`` (INCR + EXPIRE)."""

    def __init__(self, max_failures: int, window_s: int) -> None:
        self.max_failures = max_failures
        self.window_s = window_s

    def _key(self, handle: str) -> str:
        return key("login", "fail", handle)

    def retry_after(self, handle: str) -> int | None:
        client = get_redis()
        raw = client.get(self._key(handle))
        if raw is None or int(str(raw)) < self.max_failures:
            return None
        ttl = int(client.ttl(self._key(handle)))
        return max(ttl, 1)

    def record_failure(self, handle: str) -> None:
        pipe = get_redis().pipeline()
        pipe.incr(self._key(handle))
        pipe.expire(self._key(handle), self.window_s, nx=True)  # the window starts at the first failure
        pipe.execute()

    def reset(self, handle: str) -> None:
        get_redis().delete(self._key(handle))
