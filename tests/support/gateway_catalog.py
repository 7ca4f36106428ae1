"""A small catalog of test functions (tests/support/gateway_functions) for the gateway's own tests."""

from __future__ import annotations

from pathlib import Path

from infra.catalog import AsyncInvoke, Authorizer, Function, HttpRoute, Need, WsRoute
from local_stack.catalog_view import GatewayCatalog

FUNCTIONS_DIR = Path(__file__).resolve().parent / "gateway_functions"


def build_test_catalog() -> GatewayCatalog:
    functions = (
        Function("authz", "handler.handler", "test authorizer", timeout_s=5),
        Function("connect", "handler.handler", "test $connect"),
        Function("disconnect", "handler.handler", "test $disconnect"),
        Function("default", "handler.handler", "test $default"),
        Function(
            "echo",
            "handler.handler",
            "echo",
            memory_mb=256,
            environment={"GREETING": "hello from the catalog"},
        ),
        Function(
            "signer",
            "handler.handler",
            "same code as echo (signer/handler.py links to it), may read the key",
            needs=frozenset({Need.JWT_SIGN}),
        ),
        Function("boom", "handler.handler", "raises"),
        Function("slow", "handler.handler", "sleeps", timeout_s=1),
        Function(
            "notify", "handler.handler", "posts via @connections", needs=frozenset({Need.MANAGE_CONNECTIONS})
        ),
        Function("http", "handler.handler", "HTTP integration"),
        # Asynchronous targets of the fidelity tests (EventBridge rules made with PutRule/PutTargets).
        Function(
            "worker",
            "handler.handler",
            "logs invocations; fails or sleeps on demand",
            timeout_s=5,
            async_invoke=AsyncInvoke(max_retry_attempts=2, max_event_age_s=3600),
        ),
        Function(
            "single",
            "handler.handler",
            "worker's code with a reserved concurrency of 1 (throttling)",
            timeout_s=10,
            reserved_concurrency=1,
            async_invoke=AsyncInvoke(max_retry_attempts=0, max_event_age_s=3600),
        ),
        Function(
            "brief",
            "handler.handler",
            "worker's code, reserved concurrency 1, events that age out fast (60 s: 0.1 s locally)",
            timeout_s=10,
            reserved_concurrency=1,
            async_invoke=AsyncInvoke(max_retry_attempts=0, max_event_age_s=60),
        ),
    )
    return GatewayCatalog(
        functions=functions,
        authorizers=(
            Authorizer("ws-auth", "authz", ("route.request.querystring.token",), cache_ttl_s=300),
            Authorizer("http-auth", "authz", ("$request.header.Authorization",), cache_ttl_s=300),
        ),
        ws_routes=(
            WsRoute("$connect", "connect", authorizer="ws-auth"),
            WsRoute("$disconnect", "disconnect"),
            WsRoute("$default", "default", route_response=True),
            WsRoute("echo", "echo", route_response=True),
            WsRoute("sign", "signer", route_response=True),
            WsRoute("silent", "echo", route_response=False),
            WsRoute("boom", "boom", route_response=True),
            WsRoute("slow", "slow", route_response=True),
            WsRoute("notify", "notify"),
        ),
        http_routes=(
            HttpRoute("GET", "/items/{item_id}", "http", "http-auth"),
            HttpRoute("GET", "/items/special", "http"),
            HttpRoute("POST", "/items", "http"),
            HttpRoute("GET", "/files/{proxy+}", "http"),
            HttpRoute("GET", "/boom", "http"),
            HttpRoute("GET", "/binary", "http"),
            HttpRoute("GET", "/plain", "http"),
            HttpRoute("POST", "/single", "single"),
        ),
        functions_dir=FUNCTIONS_DIR,
    )
