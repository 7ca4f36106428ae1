"""Domain errors. Each carries a stable machine code; transports map the class to a status.

HTTP: ``{"error": {"code": ..., "message": ...}}`` with :attr:`ChatflowError.status`.
WebSocket: ``{"type": "error", "code": ..., "message": ...}`` and the connection stays open.
"""

from __future__ import annotations

from typing import Any


class ChatflowError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(ChatflowError):
    status = 422
    code = "invalid"


class Unauthorized(ChatflowError):
    status = 401
    code = "unauthorized"


class Forbidden(ChatflowError):
    status = 403
    code = "forbidden"


class NotFound(ChatflowError):
    status = 404
    code = "not_found"


class Conflict(ChatflowError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ChatflowError):
    status = 413
    code = "payload_too_large"


class RateLimited(ChatflowError):
    status = 429
    code = "rate_limited"


class LimitExceeded(ChatflowError):
    """A quota such as the per-user connection limit."""

    status = 429
    code = "limit_exceeded"


class Unavailable(ChatflowError):
    """A dependency (Postgres, Redis, AWS) is down; not the client's fault."""

    status = 503
    code = "unavailable"


#: How long a client should wait before retrying after an ``unavailable`` answer (WebSocket
#: ``retryAfterMs``, HTTP ``Retry-After``). Outages are answered within the timeouts of
#: docs/protocol.md ("Outages"), so a retry after a second is neither a storm nor a long wait.
UNAVAILABLE_RETRY_AFTER_MS = 1000

#: Redis/Valkey refusing work: full with ``noeviction`` ("OOM command not allowed", redis-py's
#: OutOfMemoryError), a replica or a failover in progress (READONLY, MASTERDOWN, LOADING, TRYAGAIN,
#: CLUSTERDOWN), ...
_REDIS_REFUSAL_CLASSES = (
    "OutOfMemoryError",
    "ReadOnlyError",
    "MasterDownError",
    "BusyLoadingError",
    "TryAgainError",
    "ClusterDownError",
)
#: ... and replies redis-py leaves as a plain ResponseError: persistence failing with
#: stop-writes-on-bgsave-error (MISCONF), a script stuck (BUSY), OOM as a Lua script relays it.
_REDIS_REFUSAL_PREFIXES = ("MISCONF", "BUSY ", "OOM ")


def dependency_outage(exc: BaseException) -> Unavailable | None:
    """THE rule that turns a dependency failure into an answer, for the HTTP app and every
    WebSocket handler alike: the :class:`Unavailable` to answer with (HTTP 503 / ``$connect`` 503
    / an ``unavailable`` error frame with ``retryAfterMs``), or None when ``exc`` is not an
    outage (a bug: 500 / ``internal_error``).

    Outages: Postgres unreachable or failing (``psycopg.OperationalError``: connection lost or
    refused, statement timeout), no pooled connection in time (``psycopg_pool.PoolTimeout``,
    ``TooManyRequests``), Redis/Valkey unreachable or timing out (``redis.ConnectionError``,
    ``TimeoutError``) or refusing work (see ``_REDIS_REFUSALS``), and our own ``Unavailable``.
    Only modules already imported are consulted, so this never imports psycopg or redis itself.
    """
    if isinstance(exc, Unavailable):
        if "retryAfterMs" not in exc.details:
            exc.details["retryAfterMs"] = UNAVAILABLE_RETRY_AFTER_MS
        return exc
    if not _is_outage(exc):
        return None
    return Unavailable(
        "a backing service is unavailable; retry shortly",
        code="unavailable",
        retryAfterMs=UNAVAILABLE_RETRY_AFTER_MS,
    )


def _is_outage(exc: BaseException) -> bool:
    import sys

    outage: list[type[BaseException]] = []
    if (psycopg := sys.modules.get("psycopg")) is not None:
        outage.append(psycopg.OperationalError)
    if (psycopg_pool := sys.modules.get("psycopg_pool")) is not None:
        outage.extend((psycopg_pool.PoolTimeout, psycopg_pool.TooManyRequests))
    if (redis := sys.modules.get("redis")) is not None:
        outage.extend((redis.ConnectionError, redis.TimeoutError))
        outage.extend(getattr(redis.exceptions, name) for name in _REDIS_REFUSAL_CLASSES)
        if isinstance(exc, redis.ResponseError) and str(exc).startswith(_REDIS_REFUSAL_PREFIXES):
            return True
    return isinstance(exc, tuple(outage))
