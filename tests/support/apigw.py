"""Builders for realistic API Gateway events, and a client that calls handlers as API Gateway does.

- :func:`http_event` -- an HTTP API payload-2.0 event (parses with Powertools'
  ``APIGatewayProxyEventV2Model``).
- :func:`http_authorizer_event` -- the Lambda authorizer request (payload 2.0, ``type: REQUEST``,
  ``routeArn``, ``identitySource``) API Gateway sends for that HTTP request
  (``ApiGatewayAuthorizerRequestV2``).
- :func:`ws_connect_event` / :func:`ws_authorizer_event` -- a WebSocket ``$connect`` event and the
  REQUEST authorizer event (``methodArn``) preceding it.
- :func:`lambda_context` -- a LambdaContext stand-in with the attributes Powertools reads.
- :class:`HttpApiClient` -- runs the catalog's authorizer for routes that declare one (401 when the
  identity source is missing, 403 when the authorizer says no -- API Gateway's own answers), then
  the route's function with the authorizer's context injected, like API Gateway does.

Everything here is test support: it imports ``infra.catalog`` (handlers never do).
"""

from __future__ import annotations

import base64
import json as jsonlib
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from infra.catalog import AUTHORIZERS, HTTP_ROUTES, HttpRoute
from local_stack import apigw_events
from local_stack.apigw_events import WsApi, WsConnectionFacts, now_ms

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
HTTP_API_ID = "httpapi01"
WS_API_ID = "wsapi0001"
STAGE = "$default"
WS_STAGE = "prod"
SOURCE_IP = "203.0.113.10"
USER_AGENT = "chatflow-tests/1.0"
WS_API = WsApi(
    api_id=WS_API_ID, stage=WS_STAGE, domain_name=f"{WS_API_ID}.execute-api.{REGION}.amazonaws.com"
)


@dataclass
class LambdaContext:
    """The attributes of ``awslambdaric``'s context that Powertools and our handlers read."""

    function_name: str = "chatflow-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/chatflow-test"
    log_stream_name: str = "2026/11/25/[$LATEST]test"
    timeout_ms: int = 10_000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


def lambda_context(function_name: str = "chatflow-test") -> LambdaContext:
    return LambdaContext(function_name=function_name)


def _route_template_regex(path: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{[^/}]+\}", "[^/]+", re.escape(path).replace(r"\{", "{").replace(r"\}", "}"))
    return re.compile(f"^{pattern}$")


def _path_params(template: str, path: str) -> dict[str, str]:
    names = re.findall(r"\{([^/}]+)\}", template)
    regex = re.sub(r"\{[^/}]+\}", "([^/]+)", template)
    match = re.match(f"^{regex}$", path)
    return dict(zip(names, match.groups(), strict=True)) if match else {}


def catalog_route(method: str, path: str) -> HttpRoute | None:
    """The catalog route API Gateway would select for ``method path`` (None -> no route)."""
    for route in HTTP_ROUTES:
        if route.method == method.upper() and _route_template_regex(route.path).match(path):
            return route
    return None


def _now() -> tuple[str, int]:
    epoch_ms = int(time.time() * 1000)
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000)), epoch_ms


def http_event(
    method: str,
    path: str,
    *,
    json: Any = None,
    body: str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    cookies: list[str] | None = None,
    token: str | None = None,
    authorizer_context: Mapping[str, Any] | None = None,
    route_key: str | None = None,
    base64_body: bool = False,
    source_ip: str = SOURCE_IP,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for ``method path``.

    ``json`` is serialized as the body (with ``content-type: application/json``); ``body`` is sent
    as is (bytes -> base64). ``token`` adds ``authorization: Bearer <token>``. ``route_key``
    defaults to the catalog route matching the request (``$default`` when none does).
    """
    method = method.upper()
    hdrs: dict[str, str] = {
        "accept": "application/json",
        "host": f"{HTTP_API_ID}.execute-api.{REGION}.amazonaws.com",
        "user-agent": USER_AGENT,
        "x-forwarded-for": source_ip,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    raw_body: str | None = None
    is_b64 = False
    if json is not None:
        raw_body = jsonlib.dumps(json)
        hdrs["content-type"] = "application/json"
    elif body is not None:
        if isinstance(body, bytes):
            raw_body = base64.b64encode(body).decode()
            is_b64 = True
        else:
            raw_body = body
    if raw_body is not None and base64_body and not is_b64:
        raw_body = base64.b64encode(raw_body.encode()).decode()
        is_b64 = True
    if raw_body is not None:
        length = len(base64.b64decode(raw_body)) if is_b64 else len(raw_body.encode())
        hdrs["content-length"] = str(length)
    if token is not None:
        hdrs["authorization"] = f"Bearer {token}"
    # API Gateway lower-cases header names in payload 2.0.
    for name, value in (headers or {}).items():
        hdrs[name.lower()] = value
    if route_key is None:
        route = catalog_route(method, path)
        route_key = route.route_key if route else "$default"
    template = route_key.split(" ", 1)[1] if " " in route_key else ""
    path_params = _path_params(template, path) if template else {}
    request_time, epoch_ms = _now()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": urlencode(query or {}, quote_via=quote),
        "headers": hdrs,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": HTTP_API_ID,
            "domainName": f"{HTTP_API_ID}.execute-api.{REGION}.amazonaws.com",
            "domainPrefix": HTTP_API_ID,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": USER_AGENT,
            },
            "requestId": base64.b32encode(uuid.uuid4().bytes)[:16].decode(),
            "routeKey": route_key,
            "stage": STAGE,
            "time": request_time,
            "timeEpoch": epoch_ms,
        },
        "isBase64Encoded": is_b64,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if cookies:
        event["cookies"] = list(cookies)
    if path_params:
        event["pathParameters"] = path_params
    if raw_body is not None:
        event["body"] = raw_body
    if authorizer_context is not None:
        event["requestContext"]["authorizer"] = {"lambda": dict(authorizer_context)}
    return event


def http_authorizer_event(event: Mapping[str, Any], identity_sources: tuple[str, ...]) -> dict[str, Any]:
    """The Lambda authorizer request (payload 2.0) API Gateway builds for ``event``.

    ``identitySource`` holds the values of the authorizer's identity sources, in order.
    """
    ctx = event["requestContext"]
    route_arn = (
        f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{ctx['apiId']}/{ctx['stage']}/"
        f"{ctx['http']['method']}{event['rawPath']}"
    )
    out: dict[str, Any] = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": route_arn,
        "identitySource": [v for v in (_identity_value(event, s) for s in identity_sources) if v],
        "routeKey": event["routeKey"],
        "rawPath": event["rawPath"],
        "rawQueryString": event["rawQueryString"],
        "headers": dict(event["headers"]),
        "requestContext": {k: v for k, v in ctx.items() if k != "authorizer"},
    }
    for optional in ("cookies", "queryStringParameters", "pathParameters", "stageVariables"):
        if optional in event:
            out[optional] = event[optional]
    return out


def _identity_value(event: Mapping[str, Any], source: str) -> str | None:
    """Resolve one identity source expression (``$request.header.X`` / ``route.request.querystring.x``)."""
    kind, _, name = source.rpartition(".")
    if kind.endswith("header"):
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        value = headers.get(name.lower())
        return str(value) if value is not None else None
    if kind.endswith("querystring"):
        query = event.get("queryStringParameters") or {}
        value = query.get(name)
        return str(value) if value is not None else None
    raise ValueError(f"unsupported identity source {source!r}")


def ws_connect_event(
    *,
    token: str | None = None,
    protocols: str | None = None,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    connection_id: str | None = None,
    authorizer_context: Mapping[str, Any] | None = None,
    principal_id: str | None = None,
) -> dict[str, Any]:
    """A WebSocket ``$connect`` event (parses with ``APIGatewayWebSocketConnectEventModel``).

    ``token`` goes in the query string (``?token=``); ``protocols`` is sent as the
    ``Sec-WebSocket-Protocol`` header. ``authorizer_context`` is what the authorizer returned
    (API Gateway adds ``principalId`` and ``integrationLatency``).
    """
    hdrs: dict[str, str] = {
        "Host": WS_API.domain_name,
        "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
        "Sec-WebSocket-Key": base64.b64encode(uuid.uuid4().bytes).decode(),
        "Sec-WebSocket-Version": "13",
        "User-Agent": USER_AGENT,
        "X-Forwarded-For": SOURCE_IP,
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    if protocols is not None:
        hdrs["Sec-WebSocket-Protocol"] = protocols
    hdrs.update(headers or {})
    params = dict(query or {})
    if token is not None:
        params["token"] = token
    authorizer = None
    if authorizer_context is not None:
        authorizer = {
            **dict(authorizer_context),
            "principalId": principal_id or str(authorizer_context.get("userId", "")),
            "integrationLatency": 12,
        }
    facts = WsConnectionFacts(
        connection_id=connection_id or base64.b64encode(uuid.uuid4().bytes[:9]).decode(),
        connected_at_ms=now_ms(),
        source_ip=SOURCE_IP,
        user_agent=USER_AGENT,
        headers=list(hdrs.items()),
        query=list(params.items()),
        authorizer=authorizer,
    )
    return apigw_events.ws_connect_event(WS_API, facts)


def ws_authorizer_event(connect_event: Mapping[str, Any]) -> dict[str, Any]:
    """The REQUEST authorizer event API Gateway sends before ``connect_event`` reaches $connect."""
    ctx = connect_event["requestContext"]
    out: dict[str, Any] = {
        "type": "REQUEST",
        "methodArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{ctx['apiId']}/{ctx['stage']}/$connect",
        "headers": dict(connect_event["headers"]),
        "multiValueHeaders": dict(connect_event["multiValueHeaders"]),
        "stageVariables": {},
        "requestContext": {k: v for k, v in ctx.items() if k != "authorizer"},
    }
    if "queryStringParameters" in connect_event:
        out["queryStringParameters"] = dict(connect_event["queryStringParameters"])
        out["multiValueQueryStringParameters"] = dict(connect_event["multiValueQueryStringParameters"])
    return out


Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: str
    #: The event the function received (None when API Gateway answered itself).
    event: dict[str, Any] | None = None

    @property
    def json(self) -> Any:
        return jsonlib.loads(self.body) if self.body else None


class HttpApiClient:
    """Call the HTTP API as API Gateway would: catalog route -> authorizer (if any) -> function.

    ``handlers`` maps function names to handlers (see tests/support/lambdas.py: load_handler).
    """

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self.handlers = dict(handlers)
        self.authorizer_calls = 0

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        source_ip: str = SOURCE_IP,
    ) -> HttpResponse:
        route = catalog_route(method, path)
        if route is None:
            # HTTP APIs route unknown requests to $default when one exists; ours has none.
            return HttpResponse(404, {"content-type": "application/json"}, '{"message":"Not Found"}')
        event = http_event(
            method, path, json=json, body=body, headers=headers, query=query, token=token, source_ip=source_ip
        )
        if route.authorizer is not None:
            authorizer = next(a for a in AUTHORIZERS if a.name == route.authorizer)
            auth_event = http_authorizer_event(event, authorizer.identity_sources)
            if len(auth_event["identitySource"]) < len(authorizer.identity_sources):
                # API Gateway refuses without calling the authorizer when a source is missing.
                return HttpResponse(401, {"content-type": "application/json"}, '{"message":"Unauthorized"}')
            self.authorizer_calls += 1
            result = self.handlers[authorizer.function](auth_event, lambda_context(authorizer.function))
            if not result.get("isAuthorized"):
                return HttpResponse(403, {"content-type": "application/json"}, '{"message":"Forbidden"}')
            event["requestContext"]["authorizer"] = {"lambda": dict(result.get("context") or {})}
        raw = self.handlers[route.function](event, lambda_context(route.function))
        resp_body = raw.get("body") or ""
        if raw.get("isBase64Encoded"):
            resp_body = base64.b64decode(resp_body).decode()
        headers_out = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
        return HttpResponse(int(raw["statusCode"]), headers_out, resp_body, event)

    def get(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("DELETE", path, **kwargs)
