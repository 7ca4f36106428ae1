"""Lambda events shaped exactly like API Gateway's (WebSocket API and HTTP API payload 2.0).

Field sets follow AWS's sample events (the ones Powertools for AWS Lambda ships under
``tests/events/``: apiGatewayWebSocketApiConnect/Message/Disconnect, apiGatewayAuthorizerWebSocketEvent,
apiGatewayProxyV2Event, apiGatewayAuthorizerV2Event); tests/integration/test_local_fidelity_events.py
compares them field by field and parses every builder's output with Powertools' pydantic models.

What API Gateway adds or drops, as those samples show:

* ``X-Amzn-Trace-Id`` (``Root=1-<8 hex epoch>-<24 hex>``; a client's own Root is kept),
  ``X-Forwarded-For`` (the client's value, then the source IP), ``X-Forwarded-Port`` and
  ``X-Forwarded-Proto`` on ``$connect``, the WebSocket authorizer and HTTP API events (payload
  2.0 lower-cases them); the hop-by-hop ``Connection`` and ``Upgrade`` are dropped from
  ``$connect`` and HTTP events but kept (with ``content-length: 0``) in the authorizer's.
* ``requestId`` / ``extendedRequestId`` / ``messageId`` / connection ids look like
  ``BFHPhFe3IAMF95g=`` (15 characters and ``=``); in WebSocket events ``requestId`` equals
  ``extendedRequestId``; an authorizer and the integration it precedes share the request's ids.
* ``requestContext.authorizer`` on WebSocket events: ``principalId``, ``integrationLatency`` (the
  authorizer's milliseconds) and the authorizer's context; ``identity`` is ``sourceIp`` (and
  ``userAgent`` when the client sent one).
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


#: base64 without "+" and "/" (API Gateway's ids are letters and digits).
_ALNUM = str.maketrans({"+": "x", "/": "Q"})
#: Hop-by-hop headers (RFC 9110) API Gateway does not pass to integrations.
HOP_BY_HOP = frozenset(
    {"connection", "upgrade", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
)


def aws_id() -> str:
    """An id shaped like API Gateway's request, message and connection ids (``BFHPhFe3IAMF95g=``).

    The ``=`` makes clients URL-encode connection ids in the @connections path, as they must in AWS.
    """
    # 11 random bytes are 15 base64 characters and one "=": cheap enough for every message.
    return base64.b64encode(secrets.token_bytes(11)).decode().translate(_ALNUM)


def new_trace_id(epoch_s: float | None = None) -> str:
    """An X-Ray trace header as API Gateway starts one: ``Root=1-<epoch hex>-<96 random bits>``."""
    return f"Root=1-{int(time.time() if epoch_s is None else epoch_s):08x}-{secrets.token_hex(12)}"


def trace_header(client_value: str | None) -> str:
    """API Gateway keeps a client's trace header that has a Root, and starts one otherwise."""
    if client_value and "Root=" in client_value:
        return client_value
    return new_trace_id()


def forwarded_headers(
    headers: Iterable[tuple[str, str]], *, source_ip: str, port: int, proto: str, trace_id: str
) -> list[tuple[str, str]]:
    """The client's headers as API Gateway passes them on: hop-by-hop ones dropped, then
    X-Amzn-Trace-Id, X-Forwarded-For (appended to the client's), X-Forwarded-Port and -Proto set."""
    added = {"x-amzn-trace-id", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"}
    kept = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() not in added]
    client_xff = ", ".join(v for k, v in headers if k.lower() == "x-forwarded-for")
    return [
        *kept,
        ("X-Amzn-Trace-Id", trace_id),
        ("X-Forwarded-For", f"{client_xff}, {source_ip}" if client_xff else source_ip),
        ("X-Forwarded-Port", str(port)),
        ("X-Forwarded-Proto", proto),
    ]


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
    #: The opening handshake's headers as the client sent them.
    headers: list[tuple[str, str]] = field(default_factory=list)
    query: list[tuple[str, str]] = field(default_factory=list)
    #: principalId, integrationLatency and the authorizer's context (None: no authorizer).
    authorizer: dict[str, Any] | None = None
    #: The port and scheme the client reached the API on (X-Forwarded-Port / -Proto).
    port: int = 443
    proto: str = "https"
    #: The $connect request's ids, shared by its authorizer and integration events.
    connect_request_id: str = field(default_factory=aws_id)
    trace_id: str = field(default_factory=new_trace_id)

    def passed_headers(self, *, hop_by_hop: bool = False) -> list[tuple[str, str]]:
        """The handshake headers as API Gateway hands them to $connect (``hop_by_hop``: to the
        authorizer, which also sees Connection, Upgrade and a content-length)."""
        headers = forwarded_headers(
            self.headers, source_ip=self.source_ip, port=self.port, proto=self.proto, trace_id=self.trace_id
        )
        if hop_by_hop:
            extra = [(k, v) for k, v in self.headers if k.lower() in ("connection", "upgrade")]
            if not any(k.lower() == "content-length" for k, _ in self.headers):
                extra.append(("content-length", "0"))
            headers = [*extra, *headers]
        return headers


def _ws_request_context(
    api: WsApi,
    conn: WsConnectionFacts,
    route_key: str,
    event_type: str,
    *,
    request_id: str | None = None,
    with_authorizer: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    epoch = now_ms()
    request_id = request_id or aws_id()
    identity = {"sourceIp": conn.source_ip}
    if conn.user_agent:
        identity["userAgent"] = conn.user_agent
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": _request_time(epoch),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": conn.connected_at_ms,
        "requestTimeEpoch": epoch,
        "identity": identity,
        "requestId": request_id,
        "domainName": api.domain_name,
        "connectionId": conn.connection_id,
        "apiId": api.api_id,
    }
    context.update(extra)
    if with_authorizer and conn.authorizer is not None:
        context["authorizer"] = dict(conn.authorizer)
    return context


def ws_authorizer_event(api: WsApi, conn: WsConnectionFacts) -> dict[str, Any]:
    """The REQUEST authorizer event of a WebSocket ``$connect`` (IAM-policy answer expected)."""
    headers, multi_headers = single_and_multi(conn.passed_headers(hop_by_hop=True))
    query, multi_query = single_and_multi(conn.query)
    context = _ws_request_context(
        api, conn, "$connect", "CONNECT", request_id=conn.connect_request_id, with_authorizer=False
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
    headers, multi_headers = single_and_multi(conn.passed_headers())
    event: dict[str, Any] = {
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "requestContext": _ws_request_context(
            api, conn, "$connect", "CONNECT", request_id=conn.connect_request_id
        ),
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
        "requestContext": _ws_request_context(api, conn, route_key, "MESSAGE", messageId=aws_id()),
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
    port: int = 443
    proto: str = "https"
    #: One request, one id and trace, shared by the authorizer's event and the integration's.
    request_id: str = field(default_factory=aws_id)
    trace_id: str = field(default_factory=new_trace_id)
    epoch_ms: int = field(default_factory=now_ms)

    def passed_headers(self) -> list[tuple[str, str]]:
        return forwarded_headers(
            self.headers, source_ip=self.source_ip, port=self.port, proto=self.proto, trace_id=self.trace_id
        )


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
    headers, cookies = http_headers_v2(request.passed_headers())
    epoch = request.epoch_ms
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
        "requestId": request.request_id,
        "routeKey": route_key,
        "stage": api.stage,
        "time": _request_time(epoch),
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
    # API Gateway API ids: 10 lower-case letters and digits (e.g. "c5jwxq709g").
    return uuid.uuid4().hex[:10]
