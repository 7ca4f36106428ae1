"""API Gateway WebSocket event payloads as Lambda receives them, built by the local gateway's own
``local_stack.apigw_events`` (they parse with Powertools' APIGatewayWebSocket*EventModel -- a test
checks it).

The authorizer context is what the ``ws-jwt`` authorizer returned on $connect; API Gateway puts
it (plus ``principalId``) on every event of the connection.
"""

from __future__ import annotations

import json
from typing import Any

from chatflow.domain.identity import Identity
from local_stack.apigw_events import (
    WsApi,
    WsConnectionFacts,
    now_ms,
    ws_connect_event,
    ws_disconnect_event,
    ws_message_event,
)
from local_stack.connections import new_connection_id

API_ID = "abc123defg"
STAGE = "local"
DOMAIN = f"{API_ID}.execute-api.us-east-1.amazonaws.com"
API = WsApi(api_id=API_ID, stage=STAGE, domain_name=DOMAIN)


def authorizer_context(identity: Identity) -> dict[str, Any]:
    ctx: dict[str, Any] = {k: str(v) for k, v in identity.to_context().items()}
    ctx["principalId"] = str(identity.user_id)
    ctx["integrationLatency"] = 3
    return ctx


def _facts(
    identity: Identity | None, connection_id: str, connected_at_ms: int, token: str | None = None
) -> WsConnectionFacts:
    return WsConnectionFacts(
        connection_id=connection_id,
        connected_at_ms=connected_at_ms,
        source_ip="127.0.0.1",
        user_agent="pytest-ws",
        headers=list(_HEADERS.items()),
        query=[("token", token)] if token is not None else [],
        authorizer=authorizer_context(identity) if identity is not None else None,
    )


_HEADERS = {
    "Host": DOMAIN,
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    "X-Forwarded-For": "127.0.0.1",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Proto": "https",
}


def connect_event(
    identity: Identity | None, connection_id: str | None = None, *, token: str = "test-token"
) -> dict[str, Any]:
    facts = _facts(identity, connection_id or new_connection_id(), now_ms(), token)
    return ws_connect_event(API, facts)


def message_event(
    identity: Identity | None,
    connection_id: str,
    body: dict[str, Any] | str | None,
    *,
    route_key: str | None = None,
) -> dict[str, Any]:
    """A MESSAGE event; ``route_key`` defaults to the frame's action (as API Gateway selects it
    with ``$request.body.action``), ``$default`` when there is none."""
    if isinstance(body, dict):
        raw: str | None = json.dumps(body)
        action = body.get("action")
        route = route_key or (action if isinstance(action, str) else "$default")
    else:
        raw = body
        route = route_key or "$default"
    event = ws_message_event(API, _facts(identity, connection_id, now_ms() - 1000), route, raw or "")
    if raw is None:
        del event["body"]
    return event


def disconnect_event(
    identity: Identity | None, connection_id: str, *, status_code: int = 1001, reason: str = "Going away"
) -> dict[str, Any]:
    return ws_disconnect_event(API, _facts(identity, connection_id, now_ms() - 5000), status_code, reason)
