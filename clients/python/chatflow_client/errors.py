"""Exceptions of the Chatflow client. Every one derives from :class:`ChatflowClientError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ChatflowClientError(Exception):
    """Base class of everything this package raises."""


class ApiError(ChatflowClientError):
    """The HTTP API answered an error: ``status``, the protocol's ``code`` and ``message``.

    ``details`` holds the error body's extra information (e.g. ``fields`` of a 422).
    ``code`` is ``"http_<status>"`` when the body carried none (API Gateway's own answers).
    """

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: Mapping[str, Any] = details or {}

    @property
    def retry_after_s(self) -> float | None:
        value = self.details.get("retryAfterS")
        return float(value) if isinstance(value, int | float) else None


class SessionExpired(ChatflowClientError):
    """No usable credentials: not signed in, or the refresh token was refused (signed out
    elsewhere, revoked, expired, account disabled). Sign in again."""


class ActionRefused(ChatflowClientError):
    """The server refused a WebSocket action with an ``error`` frame.

    ``code`` is the protocol's error code (docs/protocol.md, "Errors"), ``extra`` the frame's
    code-specific fields (``retryAfterMs``, ``lastSeq``, ``errors``, ``validActions`` ...).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        action: str | None = None,
        request_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (action {action})" if action else ""))
        self.code = code
        self.message = message
        self.action = action
        self.request_id = request_id
        self.extra: Mapping[str, Any] = extra or {}

    @property
    def retry_after_ms(self) -> int | None:
        value = self.extra.get("retryAfterMs")
        return int(value) if isinstance(value, int | float) else None


class HandshakeRefused(ChatflowClientError):
    """The WebSocket handshake was refused with an HTTP status (401 no token, 403 invalid token or
    disabled account, 429 too many connections, 503 server dependency down)."""

    def __init__(self, status: int, message: str = "", retry_after_s: float | None = None) -> None:
        super().__init__(f"WebSocket handshake refused: HTTP {status}" + (f" {message}" if message else ""))
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


class RequestTimeout(ChatflowClientError):
    """No reply to a WebSocket request within the client's bounds (after its retries)."""


class ClientClosed(ChatflowClientError):
    """The client was closed (by :meth:`ChatClient.close` or because the session ended) before the
    operation completed. A send that fails with it may or may not have been stored: resending the
    same ``client_message_id`` later is safe."""
