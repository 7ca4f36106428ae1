"""Identity of the current HTTP request, from the Lambda authorizer's context (payload 2.0).

The app (chatflow.http.app) re-checks the authorizer's identity with ``ensure_active`` before
routing and keeps the result for the duration of the request: :func:`current_identity` returns
that one (current role/handle, ban already refused). Works with the resolver and any ``Router``.
A context variable, not the resolver's routing context: routers are module-level singletons that
follow the last app which included them, so their ``context`` is not a safe place.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol

from chatflow.domain.identity import Identity
from chatflow.errors import Unauthorized

#: The ensure_active-checked identity of the request being handled (set by the app).
checked_identity: ContextVar[Identity | None] = ContextVar("chatflow_checked_identity", default=None)


class _HasEvent(Protocol):
    @property
    def current_event(self) -> Any: ...


def authorizer_context(app: _HasEvent) -> dict[str, Any] | None:
    authorizer = app.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    ctx = authorizer.get("lambda")
    return ctx if isinstance(ctx, dict) else None


def current_identity(app: _HasEvent) -> Identity:
    """The caller established by the ``http-jwt`` authorizer; 401 when there is none.

    API Gateway only invokes authorized routes after the authorizer allowed the request, so a
    missing context means a misconfigured route: refuse rather than guess.
    """
    checked = checked_identity.get()
    if checked is not None:
        return checked
    ctx = authorizer_context(app)
    if not ctx:
        raise Unauthorized("authentication required")
    try:
        return Identity.from_context(ctx)
    except (KeyError, ValueError):
        raise Unauthorized("malformed authorizer context") from None
