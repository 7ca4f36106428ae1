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
