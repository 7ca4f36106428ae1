"""API Gateway HTTP API emulation (aiohttp): catalog routes, payload format 2.0, Lambda authorizer,
CORS, and API Gateway's own answers.

* Routing: catalog ``HttpRoute``s (``/rooms/{room_id}``, greedy ``{proxy+}``, ``ANY``); the most
  specific match wins. No match -> 404 ``{"message":"Not Found"}``, as API Gateway.
* Authorizer (payload 2.0): a missing identity source -> 401 ``{"message":"Unauthorized"}``;
  denied -> 403 ``{"message":"Forbidden"}``; the context reaches the integration under
  ``requestContext.authorizer.lambda``. Simple (``isAuthorized``) and IAM-policy answers both work.
* CORS (configured on the API, as the CDK app does): preflight ``OPTIONS`` answered by the gateway
  (204) without calling a function; ``Access-Control-Allow-Origin`` added to every answer.
* Integration answers (payload 2.0): a dict with ``statusCode`` is used as is (``body``,
  ``headers``, ``cookies``, ``isBase64Encoded``); anything else becomes a 200 JSON body. A function
  error -> 500 ``{"message":"Internal Server Error"}``.
* Bodies: text content types arrive as text, others base64-encoded with ``isBase64Encoded``.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from infra.catalog import HttpRoute
from local_stack import apigw_events as ev
from local_stack.authorizers import AuthorizerRunner, identity_values
from local_stack.catalog_view import GatewayCatalog
from local_stack.lambda_runtime import FunctionError, LambdaRuntime

log = logging.getLogger("local_stack.http")

#: API Gateway HTTP API payload limit (10 MB).
MAX_HTTP_PAYLOAD_BYTES = 10 * 1024 * 1024
_HEADER_BREAKERS = re.compile(r"[\r\n\x00]")


@dataclass(frozen=True)
class CorsConfig:
    allow_origins: tuple[str, ...] = ("*",)
    # Defaults as the CDK app's HTTP API (infra/api.py); tests/infra/test_catalog_parity.py checks it.
    allow_headers: tuple[str, ...] = ("authorization", "content-type", "idempotency-key")
    allow_methods: tuple[str, ...] = ("*",)
    expose_headers: tuple[str, ...] = ()
    max_age_s: int = 3600
    allow_credentials: bool = False

    def origin_for(self, origin: str | None) -> str | None:
        if origin is None:
            return None
        if "*" in self.allow_origins:
            return "*"
        return origin if origin in self.allow_origins else None


@dataclass(frozen=True)
class _CompiledRoute:
    route: HttpRoute
    pattern: re.Pattern[str]
    #: Sort key: literal segments first, greedy last (API Gateway prefers the most specific).
    specificity: tuple[int, int, int]


def compile_route(route: HttpRoute) -> _CompiledRoute:
    parts = [p for p in route.path.split("/") if p]
    regex = ""
    literal = params = greedy = 0
    for part in parts:
        if part.startswith("{") and part.endswith("+}"):
            regex += f"/(?P<{part[1:-2]}>.+)"
            greedy += 1
        elif part.startswith("{") and part.endswith("}"):
            regex += f"/(?P<{part[1:-1]}>[^/]+)"
            params += 1
        else:
            regex += "/" + re.escape(part)
            literal += 1
    return _CompiledRoute(route, re.compile(f"^{regex or '/'}$"), (greedy, -literal, params))


def _status_body(status: int, message: str, cors_headers: dict[str, str]) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=cors_headers)


class HttpApi:
    def __init__(
        self,
        catalog: GatewayCatalog,
        runtime: LambdaRuntime,
        *,
        api_id: str | None = None,
        cors: CorsConfig | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.runtime = runtime
        self.api_id = api_id or ev.new_api_id()
        self.cors = cors or CorsConfig()
        self.routes = sorted((compile_route(r) for r in catalog.http_routes), key=lambda c: c.specificity)
        self.authorizers = {
            a.name: AuthorizerRunner(a, runtime.invoke, kind="http")
            for a in catalog.authorizers
            if any(r.authorizer == a.name for r in catalog.http_routes)
        }
        self.on_event = on_event
        self.domain_name = "127.0.0.1"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_HTTP_PAYLOAD_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        for compiled in self.routes:
            if compiled.route.method not in (method, "ANY"):
                continue
            found = compiled.pattern.match(path)
            if found:
                return compiled.route, found.groupdict()
        return None

    def _cors_headers(self, request: web.Request) -> dict[str, str]:
        origin = self.cors.origin_for(request.headers.get("Origin"))
        if origin is None:
            return {}
        headers = {"Access-Control-Allow-Origin": origin}
        if self.cors.expose_headers:
            headers["Access-Control-Expose-Headers"] = ",".join(self.cors.expose_headers)
        if self.cors.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def _preflight(self, request: web.Request) -> web.Response:
        cors = self._cors_headers(request)
        if not cors:
            return web.Response(status=204)
        wanted_method = request.headers.get("Access-Control-Request-Method", "").upper()
        if (
            wanted_method
            and "*" not in self.cors.allow_methods
            and wanted_method not in self.cors.allow_methods
        ):
            return web.Response(status=204, headers={})
        cors.update(
            {
                "Access-Control-Allow-Methods": ",".join(self.cors.allow_methods),
                "Access-Control-Allow-Headers": ",".join(self.cors.allow_headers),
                "Access-Control-Max-Age": str(self.cors.max_age_s),
            }
        )
        return web.Response(status=204, headers=cors)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.domain_name = request.host
        method = request.method.upper()
        if method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return self._preflight(request)
        cors = self._cors_headers(request)
        raw_path = request.rel_url.raw_path
        matched = self.match(method, request.path)
        if matched is None:
            return _status_body(404, "Not Found", cors)
        route, path_params = matched
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _status_body(413, "Request Entity Too Large", cors)
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        facts = ev.HttpRequestFacts(
            method=method,
            raw_path=raw_path,
            raw_query=request.rel_url.raw_query_string,
            headers=list(request.headers.items()),
            body=body,
            source_ip=request.remote or "127.0.0.1",
            port=int(sockname[1]) if sockname else 80,
            proto=request.scheme,
            trace_id=ev.trace_header(request.headers.get("X-Amzn-Trace-Id")),
        )
        api = ev.HttpApi(self.api_id, self.domain_name)
        authorizer_context: dict[str, Any] | None = None
        if route.authorizer is not None:
            runner = self.authorizers[route.authorizer]
            headers_map, _ = ev.http_headers_v2(facts.headers)
            query_map = dict(request.query.items())
            identity = identity_values(runner.authorizer.identity_sources, headers_map, query_map)
            if identity is None:
                return _status_body(401, "Unauthorized", cors)
            decision = await runner.decide(
                identity,
                ev.http_authorizer_event_v2(api, facts, route.route_key, path_params, identity),
                api.route_arn(method, raw_path),
            )
            if decision.status == 401:
                return _status_body(401, "Unauthorized", cors)
            if decision.status == 403:
                return _status_body(403, "Forbidden", cors)
            if not decision.allowed:
                return _status_body(500, "Internal Server Error", cors)
            authorizer_context = decision.context or {}
        event = ev.http_event_v2(api, facts, route.route_key, path_params, authorizer_context)
        if self.on_event is not None:
            self.on_event(route.route_key, event)
        try:
            result = await self.runtime.invoke(route.function, event)
        except FunctionError as exc:
            log.error("%s failed: %s", route.route_key, exc)
            return _status_body(500, "Internal Server Error", cors)
        return self._to_response(result, cors)

    def _to_response(self, result: Any, cors: dict[str, str]) -> web.Response:
        if isinstance(result, dict) and "statusCode" in result:
            try:
                return self._integration_response(result, cors)
            except (TypeError, ValueError, AttributeError) as exc:  # binascii.Error is a ValueError
                # API Gateway: "Malformed Lambda proxy response" -> its own 500.
                log.error("malformed integration response: %s", exc)
                return _status_body(500, "Internal Server Error", cors)
        payload = result if isinstance(result, str) else json.dumps(result)
        return web.Response(
            status=200, body=payload.encode(), headers={"Content-Type": "application/json", **cors}
        )

    @staticmethod
    def _integration_response(result: dict[str, Any], cors: dict[str, str]) -> web.Response:
        """Payload 2.0 answer -> HTTP response; ValueError/TypeError when it is malformed."""
        status = int(result["statusCode"])
        if not 100 <= status <= 599:
            raise ValueError(f"statusCode {status}")
        raw_body = result.get("body")
        data: bytes
        if raw_body is None:
            data = b""
        elif result.get("isBase64Encoded"):
            data = base64.b64decode(str(raw_body), validate=True)
        else:
            data = (raw_body if isinstance(raw_body, str) else json.dumps(raw_body)).encode()
        response = web.Response(status=status, body=data)
        single = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
        multi = [
            (str(k), str(v)) for k, values in (result.get("multiValueHeaders") or {}).items() for v in values
        ]
        multi += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
        for key, value in single + multi:
            if _HEADER_BREAKERS.search(key) or _HEADER_BREAKERS.search(value):
                raise ValueError(f"control character in header {key!r}")
        for key, value in single:
            response.headers[key] = value
        for key, value in multi:
            response.headers.add(key, value)
        if "Content-Type" not in response.headers and data:
            response.headers["Content-Type"] = "application/json"
        # API Gateway's CORS configuration overrides the integration's CORS headers.
        response.headers.update(cors)
        return response
