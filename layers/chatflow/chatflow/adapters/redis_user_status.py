"""Redis adapters of the ``UserStatusCache`` and ``LoginThrottle`` ports (chatflow.domain.ports).

Key ``<prefix>user:<id>:status`` -> ``status|tokens_valid_after|role|handle``. Changes write the
new value through (SET); cache fills after a Postgres read use SET NX, so a fill that raced with a
ban can never overwrite the ban's value. The TTL only bounds memory: correctness never waits on it.
"""

from __future__ import annotations

import math
from uuid import UUID

from chatflow.adapters.redis_client import RedisConnection
from chatflow.domain.user_models import LoginBackoff, UserStatus

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
    """Failed sign-ins per (source IP, handle) and per source IP across handles, each with a
    progressive back-off (:class:`~chatflow.domain.user_models.LoginBackoff`), never a hard lock.

    Keys: ``<prefix>login:fail:<ip>:<handle>`` / ``<prefix>login:ipfail:<ip>`` count failures
    (forgotten ``window_s`` after the last failure, or after the wait it started);
    ``login:wait:<ip>:<handle>`` / ``login:ipwait:<ip>`` exist while the next attempt must wait
    (their TTL is the wait). A check is one round trip (two PTTLs); a failure one (two INCR +
    EXPIRE), plus one (SET + EXPIRE) when a wait starts.
    """

    def __init__(
        self, redis: RedisConnection, *, pair: LoginBackoff, per_ip: LoginBackoff, window_s: int
    ) -> None:
        self._redis = redis
        self.pair = pair
        self.per_ip = per_ip
        self.window_s = window_s

    def _keys(self, handle: str, source_ip: str) -> tuple[str, str, str, str]:
        k = self._redis.key
        return (
            k("login", "fail", source_ip, handle),
            k("login", "wait", source_ip, handle),
            k("login", "ipfail", source_ip),
            k("login", "ipwait", source_ip),
        )

    def retry_after(self, handle: str, source_ip: str) -> int | None:
        _, pair_wait, _, ip_wait = self._keys(handle, source_ip)
        pipe = self._redis.client.pipeline(transaction=False)
        pipe.pttl(pair_wait)
        pipe.pttl(ip_wait)
        wait_ms = max(int(v) for v in pipe.execute())  # -2: no key (no wait)
        if wait_ms <= 0:
            return None
        return max(1, math.ceil(wait_ms / 1000))

    def record_failure(self, handle: str, source_ip: str) -> None:
        pair_count, pair_wait, ip_count, ip_wait = self._keys(handle, source_ip)
        pipe = self._redis.client.pipeline(transaction=False)
        pipe.incr(pair_count)
        pipe.expire(pair_count, self.window_s)
        pipe.incr(ip_count)
        pipe.expire(ip_count, self.window_s)
        pair_failures, _, ip_failures, _ = pipe.execute()
        waits = (
            (pair_count, pair_wait, self.pair.delay_s(int(pair_failures))),
            (ip_count, ip_wait, self.per_ip.delay_s(int(ip_failures))),
        )
        if any(delay for _, _, delay in waits):
            pipe = self._redis.client.pipeline(transaction=False)
            for count_key, wait_key, delay in waits:
                if delay:
                    pipe.set(wait_key, "1", ex=delay)
                    # The count outlives the wait by the window: otherwise a count expiring with a
                    # maximal wait would hand the caller its free failures again every window.
                    pipe.expire(count_key, self.window_s + delay)
            pipe.execute()

    def reset(self, handle: str, source_ip: str) -> None:
        """After a successful sign-in: that (IP, handle) pair starts afresh. The IP's budget does
        not (a credential-stuffing run would otherwise refill it with one account of its own)."""
        pair_count, pair_wait, _, _ = self._keys(handle, source_ip)
        self._redis.client.delete(pair_count, pair_wait)
