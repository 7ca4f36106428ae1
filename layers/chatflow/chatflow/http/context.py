"""Identity of the current HTTP request, from the Lambda authorizer's context (payload 2.0)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from chatflow.domain.identity import Identity
from chatflow.errors import Unauthorized


def authorizer_context(app: APIGatewayHttpResolver) -> dict[str, Any] | None:
    authorizer = app.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    ctx = authorizer.get("lambda")
    return ctx if isinstance(ctx, dict) else None


def current_identity(app: APIGatewayHttpResolver) -> Identity:
    """The caller established by the ``http-jwt`` authorizer; 401 when there is none.

    API Gateway only invokes authorized routes after the authorizer allowed the request, so a
    missing context means a misconfigured route: refuse rather than guess.
    """
    ctx = authorizer_context(app)
    if not ctx:
        raise Unauthorized("authentication required")
    try:
        return Identity.from_context(ctx)
    except (KeyError, ValueError):
        raise Unauthorized("malformed authorizer context") from None
