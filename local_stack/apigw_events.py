"""Lambda events shaped exactly like API Gateway's (WebSocket API and HTTP API payload 2.0).

Field sets follow the AWS developer guide's sample events; tests parse every builder's output with
Powertools' pydantic models (``APIGatewayWebSocket*EventModel``, ``APIGatewayProxyEventV2Model``).
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

ACCOUNT_ID = "000000000000"


def _request_time(epoch_ms: int) -> str:
    # API Gateway's CLF-style timestamp: 09/Feb/2024:18:11:43 +0000
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def now_ms() -> int:
    return int(time.time() * 1000)


def _extended_request_id() -> str:
    return base64.b64encode(secrets.token_bytes(6)).decode()


def _request_id() -> str:
    return base64.b64encode(secrets.token_bytes(6)).decode()


def single_and_multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """API Gateway v1-style maps: the single-value map keeps the LAST value of a repeated key."""
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        multi.setdefault(key, []).append(value)
    return {k: v[-1] for k, v in multi.items()}, multi


@dataclass(frozen=True)
class WsApi:
    """Identity of the emulated WebSocket API (what goes into every requestContext)."""

    api_id: str
    stage: str
    domain_name: str
    region: str = "us-east-1"

    def route_arn(self, route_key: str) -> str:
        return f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{self.api_id}/{self.stage}/{route_key}"


@dataclass
class WsConnectionFacts:
    """What API Gateway remembers about a connection and repeats in each event."""

    connection_id: str
    connected_at_ms: int
    source_ip: str
    user_agent: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    query: list[tuple[str, str]] = field(default_factory=list)
    authorizer: dict[str, Any] | None = None


def _ws_request_context(
    api: WsApi, conn: WsConnectionFacts, route_key: str, event_type: str, **extra: Any
) -> dict[str, Any]:
    epoch = now_ms()
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": _extended_request_id(),
        "requestTime": _request_time(epoch),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": conn.connected_at_ms,
        "requestTimeEpoch": epoch,
        "identity": {"userAgent": conn.user_agent, "sourceIp": conn.source_ip},
        "requestId": _request_id(),
        "domainName": api.domain_name,
        "connectionId": conn.connection_id,
        "apiId": api.api_id,
    }
    context.update(extra)
    if conn.authorizer is not None:
        context["authorizer"] = dict(conn.authorizer)
    return context


def ws_authorizer_event(api: WsApi, conn: WsConnectionFacts) -> dict[str, Any]:
    """The REQUEST authorizer event of a WebSocket ``$connect`` (IAM-policy answer expected)."""
    headers, multi_headers = single_and_multi(conn.headers)
    query, multi_query = single_and_multi(conn.query)
    context = _ws_request_context(
        api, WsConnectionFacts(**{**conn.__dict__, "authorizer": None}), "$connect", "CONNECT"
    )
    return {
        "type": "REQUEST",
        "methodArn": api.route_arn("$connect"),
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "stageVariables": {},
        "requestContext": context,
    }


def ws_connect_event(api: WsApi, conn: WsConnectionFacts) -> dict[str, Any]:
    headers, multi_headers = single_and_multi(conn.headers)
    event: dict[str, Any] = {
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "requestContext": _ws_request_context(api, conn, "$connect", "CONNECT"),
        "isBase64Encoded": False,
    }
    if conn.query:  # API Gateway omits the maps when the URL has no query string
        event["queryStringParameters"], event["multiValueQueryStringParameters"] = single_and_multi(
            conn.query
        )
    return event


def ws_message_event(
    api: WsApi, conn: WsConnectionFacts, route_key: str, body: str | bytes
) -> dict[str, Any]:
    is_binary = isinstance(body, bytes)
    return {
        "requestContext": _ws_request_context(
            api, conn, route_key, "MESSAGE", messageId=_extended_request_id()
        ),
        "body": base64.b64encode(body).decode() if isinstance(body, bytes) else body,
        "isBase64Encoded": is_binary,
    }


def ws_disconnect_event(api: WsApi, conn: WsConnectionFacts, status_code: int, reason: str) -> dict[str, Any]:
    # API Gateway sends a reduced header set on $disconnect.
    headers = {"Host": api.domain_name, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": _ws_request_context(
            api, conn, "$disconnect", "DISCONNECT", disconnectStatusCode=status_code, disconnectReason=reason
        ),
        "isBase64Encoded": False,
    }


# --- HTTP API, payload format 2.0 -------------------------------------------------------------


@dataclass(frozen=True)
class HttpApi:
    api_id: str
    domain_name: str
    stage: str = "$default"
    region: str = "us-east-1"

    def route_arn(self, method: str, path: str) -> str:
        return f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{self.api_id}/{self.stage}/{method}{path}"


@dataclass
class HttpRequestFacts:
    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str


_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "+json", "+xml")


def _is_text(content_type: str) -> bool:
    ctype = content_type.lower()
    return any(marker in ctype for marker in _TEXT_TYPES) or "x-www-form-urlencoded" in ctype


def http_headers_v2(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str] | None]:
    """Lower-cased header map, duplicates joined with commas; cookies split out as 2.0 does."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for key, value in pairs:
        name = key.lower()
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers, cookies or None


def http_event_v2(
    api: HttpApi,
    request: HttpRequestFacts,
    route_key: str,
    path_parameters: Mapping[str, str] | None,
    authorizer_context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    headers, cookies = http_headers_v2(request.headers)
    epoch = now_ms()
    query: dict[str, str] = {}
    for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": api.api_id,
        "domainName": api.domain_name,
        "domainPrefix": api.domain_name.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": request.raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": _request_id(),
        "routeKey": route_key,
        "stage": api.stage,
        "time": datetime.fromtimestamp(epoch / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": epoch,
    }
    if authorizer_context is not None:
        context["authorizer"] = {"lambda": dict(authorizer_context)}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if request.body:
        if _is_text(headers.get("content-type", "")):
            try:
                event["body"] = request.body.decode()
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(request.body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(request.body).decode()
            event["isBase64Encoded"] = True
    return event


def http_authorizer_event_v2(
    api: HttpApi,
    request: HttpRequestFacts,
    route_key: str,
    path_parameters: Mapping[str, str] | None,
    identity_source: list[str],
) -> dict[str, Any]:
    """The Lambda authorizer event of an HTTP API (payload format 2.0)."""
    event = http_event_v2(api, request, route_key, path_parameters)
    event.pop("body", None)
    event.pop("isBase64Encoded", None)
    event["type"] = "REQUEST"
    event["routeArn"] = api.route_arn(request.method, request.raw_path)
    event["identitySource"] = identity_source
    return event


def new_api_id() -> str:
    return uuid.uuid4().hex[:10]
