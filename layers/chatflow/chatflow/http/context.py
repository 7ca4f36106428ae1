"""Identity of the current HTTP request, from the Lambda authorizer's context (payload 2.0).

The app (chatflow.http.app) re-checks the authorizer's identity with ``ensure_active`` before
routing and keeps the result for the duration of the request: :func:`current_identity` returns
that one (current role/handle, ban already refused). Works with the resolver and any ``Router``.
A context variable, not the resolver's routing context: it is set before routing (and before
Powertools' request validation), where the router's context is not available yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Protocol

from chatflow.domain.identity import Identity
from chatflow.errors import Unauthorized

#: The ensure_active-checked identity of the request being handled (set by the app).
checked_identity: ContextVar[Identity | None] = ContextVar("chatflow_checked_identity", default=None)


class _HasEvent(Protocol):
    @property
    def current_event(self) -> Any: ...


def authorizer_context(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Lambda authorizer's context of a payload 2.0 event; None when absent or empty."""
    ctx = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda")
    return ctx if isinstance(ctx, dict) and ctx else None


def identity_from_authorizer(ctx: dict[str, Any]) -> Identity:
    """The identity the authorizer put in ``ctx``; 401 when it is malformed."""
    try:
        return Identity.from_context(ctx)
    except (KeyError, ValueError):
        raise Unauthorized("malformed authorizer context") from None


def current_identity(app: _HasEvent) -> Identity:
    """The caller established by the ``http-jwt`` authorizer; 401 when there is none.

    API Gateway only invokes authorized routes after the authorizer allowed the request, so a
    missing context means a misconfigured route: refuse rather than guess.
    """
    checked = checked_identity.get()
    if checked is not None:
        return checked
    ctx = authorizer_context(app.current_event.raw_event)
    if ctx is None:
        raise Unauthorized("authentication required")
    return identity_from_authorizer(ctx)


def source_ip(app: _HasEvent) -> str:
    """The caller's address as API Gateway saw it (``requestContext.http.sourceIp``), never a
    client-written header such as X-Forwarded-For; "" when absent."""
    http = ((app.current_event.raw_event.get("requestContext") or {}).get("http")) or {}
    value = http.get("sourceIp") if isinstance(http, dict) else None
    return value if isinstance(value, str) else ""
