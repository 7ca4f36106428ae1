"""API Gateway WebSocket event payloads as Lambda receives them (they parse with Powertools'
APIGatewayWebSocket{Connect,Message,Disconnect}EventModel -- a test checks it).

The authorizer context is what the ``ws-jwt`` authorizer returned on $connect; API Gateway puts
it (plus ``principalId``) on every event of the connection.
"""

from __future__ import annotations

import json
import secrets
import string
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from chatflow.domain.identity import Identity

API_ID = "abc123defg"
STAGE = "local"
DOMAIN = f"{API_ID}.execute-api.us-east-1.amazonaws.com"


def new_connection_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(15)) + "="


def authorizer_context(identity: Identity) -> dict[str, Any]:
    ctx: dict[str, Any] = {k: str(v) for k, v in identity.to_context().items()}
    ctx["principalId"] = str(identity.user_id)
    ctx["integrationLatency"] = 3
    return ctx


def _request_context(
    route_key: str, event_type: str, connection_id: str, identity: Identity | None, connected_at_ms: int
) -> dict[str, Any]:
    now = datetime.now(UTC)
    ctx: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": uuid.uuid4().hex[:16] + "=",
        "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "messageDirection": "IN",
        "stage": STAGE,
        "connectedAt": connected_at_ms,
        "requestTimeEpoch": int(time.time() * 1000),
        "identity": {"sourceIp": "127.0.0.1", "userAgent": "pytest-ws"},
        "requestId": uuid.uuid4().hex[:16] + "=",
        "domainName": DOMAIN,
        "connectionId": connection_id,
        "apiId": API_ID,
    }
    if identity is not None:
        ctx["authorizer"] = authorizer_context(identity)
    return ctx


def _headers(token: str | None) -> tuple[dict[str, str], dict[str, list[str]]]:
    headers = {
        "Host": DOMAIN,
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "X-Forwarded-For": "127.0.0.1",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    return headers, {k: [v] for k, v in headers.items()}


def connect_event(
    identity: Identity | None, connection_id: str | None = None, *, token: str = "test-token"
) -> dict[str, Any]:
    cid = connection_id or new_connection_id()
    headers, multi = _headers(token)
    return {
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": {"token": token},
        "multiValueQueryStringParameters": {"token": [token]},
        "requestContext": _request_context("$connect", "CONNECT", cid, identity, int(time.time() * 1000)),
        "isBase64Encoded": False,
    }


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
    ctx = _request_context(route, "MESSAGE", connection_id, identity, int(time.time() * 1000) - 1000)
    ctx["messageId"] = uuid.uuid4().hex[:16] + "="
    event: dict[str, Any] = {"requestContext": ctx, "isBase64Encoded": False}
    if raw is not None:
        event["body"] = raw
    return event


def disconnect_event(
    identity: Identity | None, connection_id: str, *, status_code: int = 1001, reason: str = "Going away"
) -> dict[str, Any]:
    headers, multi = _headers(None)
    ctx = _request_context(
        "$disconnect", "DISCONNECT", connection_id, identity, int(time.time() * 1000) - 5000
    )
    ctx["disconnectStatusCode"] = status_code
    ctx["disconnectReason"] = reason
    return {"headers": headers, "multiValueHeaders": multi, "requestContext": ctx, "isBase64Encoded": False}
