"""Identity of the current HTTP request, from the Lambda authorizer's context (payload 2.0).

The app (chatflow.http.app) re-checks the authorizer's identity with ``ensure_active`` before
routing and stores the result in the routing context: :func:`current_identity` returns that one
(current role/handle, ban already refused). Works with the resolver and with any ``Router``.
"""

from __future__ import annotations

from typing import Any, Protocol

from chatflow.domain.identity import Identity
from chatflow.errors import Unauthorized

#: Where the app stores the ensure_active-checked identity in the routing context.
IDENTITY_CONTEXT_KEY = "chatflow_identity"


class _HasEvent(Protocol):
    @property
    def current_event(self) -> Any: ...

    @property
    def context(self) -> dict[str, Any]: ...


def authorizer_context(app: _HasEvent) -> dict[str, Any] | None:
    authorizer = app.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    ctx = authorizer.get("lambda")
    return ctx if isinstance(ctx, dict) else None


def current_identity(app: _HasEvent) -> Identity:
    """The caller established by the ``http-jwt`` authorizer; 401 when there is none.

    API Gateway only invokes authorized routes after the authorizer allowed the request, so a
    missing context means a misconfigured route: refuse rather than guess.
    """
    checked = app.context.get(IDENTITY_CONTEXT_KEY)
    if isinstance(checked, Identity):
        return checked
    ctx = authorizer_context(app)
    if not ctx:
        raise Unauthorized("authentication required")
    try:
        return Identity.from_context(ctx)
    except (KeyError, ValueError):
        raise Unauthorized("malformed authorizer context") from None
