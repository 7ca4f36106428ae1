"""The HTTP app's guarantees: error shapes, limits, CORS, health, OpenAPI, catalog agreement.

Requests go through the real ``functions/http_api`` handler with payload-2.0 events (directly,
for answers API Gateway itself would never produce, e.g. a route the catalog lacks).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from chatflow.container import Container
from chatflow.http.schemas import error_codes_of
from infra.catalog import HTTP_ROUTES
from tests.support.apigw import HttpApiClient, http_event, lambda_context
from tests.support.identity import http_client, register
from tests.support.lambdas import load_handler, load_handler_module, reset_handlers

Handler = Any


@pytest.fixture
def http(chatflow_env: dict[str, str]) -> Handler:
    reset_handlers()
    return load_handler("http_api")


@pytest.fixture
def api(chatflow_env: dict[str, str]) -> HttpApiClient:
    reset_handlers()
    return http_client()


def _call(handler: Handler, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    raw = handler(event, lambda_context("http_api"))
    body = raw.get("body") or ""
    return (
        raw["statusCode"],
        {k.lower(): v for k, v in raw.get("headers", {}).items()},
        json.loads(body) if body else None,
    )


def _assert_error(body: Any, code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


def test_unknown_route_is_404_json(http: Handler) -> None:
    status, headers, body = _call(http, http_event("GET", "/no/such/thing", route_key="$default"))
    assert status == 404
    assert headers["content-type"] == "application/json"
    _assert_error(body, "not_found")


def test_known_path_other_method_is_405_with_allow(http: Handler) -> None:
    status, headers, body = _call(http, http_event("DELETE", "/users/me", route_key="$default"))
    assert status == 405
    assert headers["allow"] == "GET"
    _assert_error(body, "method_not_allowed")


def test_malformed_json_is_400(http: Handler) -> None:
    status, _, body = _call(
        http,
        http_event("POST", "/auth/login", body="{not json", headers={"content-type": "application/json"}),
    )
    assert status == 400
    _assert_error(body, "malformed_json")


def test_validation_error_lists_fields_without_echoing_input(http: Handler) -> None:
    secret = "hunter2-secret-value-" * 10
    status, _, body = _call(
        http, http_event("POST", "/auth/login", json={"handle": "", "password": secret, "x": 1})
    )
    assert status == 422
    _assert_error(body, "invalid")
    locs = {tuple(f["loc"]) for f in body["error"]["details"]["fields"]}
    assert ("body", "handle") in locs
    assert ("body", "x") in locs
    assert secret not in json.dumps(body)


def test_wrong_content_type_is_415(http: Handler) -> None:
    status, _, body = _call(
        http, http_event("POST", "/auth/login", body="handle=a", headers={"content-type": "text/plain"})
    )
    assert status == 415
    _assert_error(body, "unsupported_media_type")


def test_oversized_body_by_content_length_and_by_actual_size(
    http: Handler, chatflow_env: dict[str, str]
) -> None:
    from chatflow.settings import get_settings

    limit = get_settings().max_request_body_bytes
    declared = http_event("POST", "/auth/login", json={"handle": "a", "password": "b"})
    declared["headers"]["content-length"] = str(limit + 1)
    status, _, body = _call(http, declared)
    assert status == 413
    _assert_error(body, "payload_too_large")

    actual = http_event(
        "POST", "/auth/register", body="x" * (limit + 1), headers={"content-type": "application/json"}
    )
    del actual["headers"]["content-length"]  # a lying/missing header does not help
    assert _call(http, actual)[0] == 413

    b64 = http_event("POST", "/auth/register", body=b"y" * (limit + 1))
    b64["headers"]["content-length"] = "10"
    assert b64["isBase64Encoded"] is True
    assert _call(http, b64)[0] == 413

    at_limit = http_event("POST", "/auth/login", body=json.dumps({"handle": "h" * 10, "password": "p" * 100}))
    assert _call(http, at_limit)[0] != 413


def test_unexpected_exception_is_500_without_details_and_logged(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    from chatflow.http.app import create_app

    app = create_app(container)

    @app.get("/boom")
    def boom() -> dict[str, Any]:
        raise RuntimeError("database password is swordfish")

    with caplog.at_level(logging.ERROR):
        raw = app.resolve(http_event("GET", "/boom", route_key="$default"), lambda_context())  # type: ignore[arg-type]
    assert raw["statusCode"] == 500
    body = json.loads(raw["body"])
    _assert_error(body, "internal")
    assert "swordfish" not in raw["body"]
    assert any(r.exc_info and "swordfish" in str(r.exc_info[1]) for r in caplog.records)


def test_cors_preflight_and_response_headers(http: Handler) -> None:
    preflight = http_event(
        "OPTIONS",
        "/auth/login",
        route_key="$default",
        headers={"origin": "https://chat.example", "access-control-request-method": "POST"},
    )
    status, headers, _ = _call(http, preflight)
    assert status == 204
    assert headers["access-control-allow-origin"] in ("*", "https://chat.example")
    assert "authorization" in headers["access-control-allow-headers"].lower()
    status, headers, _ = _call(
        http, http_event("GET", "/health/live", headers={"origin": "https://chat.example"})
    )
    assert status == 200
    assert "access-control-allow-origin" in headers
    # Errors answered before routing carry CORS headers too (browsers need them to read the error).
    big = http_event(
        "POST",
        "/auth/login",
        body="{}",
        headers={"origin": "https://chat.example", "content-length": "99999999"},
    )
    status, headers, _ = _call(http, big)
    assert status == 413
    assert "access-control-allow-origin" in headers


def test_health_live_and_ready(http: Handler) -> None:
    status, _, body = _call(http, http_event("GET", "/health/live"))
    assert (status, body) == (200, {"status": "ok"})
    status, _, body = _call(http, http_event("GET", "/health/ready"))
    assert status == 200, body
    assert body["status"] == "ok"
    for name in ("postgres", "redis"):
        assert body["checks"][name]["ok"] is True
        assert isinstance(body["checks"][name]["latencyMs"], float | int)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed once the socket is: connections are refused


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch, chatflow_env: dict[str, str]) -> Iterator[Any]:
    """Point settings at a closed port for one dependency; the http_api function cold-starts
    with them (returned); the functions cold-start again with the real settings afterwards."""

    def breaker(dependency: str) -> Handler:
        port = _closed_port()
        if dependency == "redis":
            monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
        else:
            url = re.sub(r"@[^/]+/", f"@127.0.0.1:{port}/", chatflow_env["DATABASE_URL"])
            monkeypatch.setenv("DATABASE_URL", url)
            monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", "1")
        reset_handlers()
        return load_handler("http_api")

    yield breaker
    monkeypatch.undo()
    reset_handlers()


@pytest.mark.parametrize("dependency", ["redis", "postgres"])
def test_ready_is_503_when_a_dependency_is_down(broken: Any, dependency: str) -> None:
    http = broken(dependency)
    status, _, body = _call(http, http_event("GET", "/health/ready"))
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"][dependency]["ok"] is False
    assert "error" in body["checks"][dependency]
    other = "postgres" if dependency == "redis" else "redis"
    assert body["checks"][other]["ok"] is True
    # Liveness does no I/O: still fine.
    assert _call(http, http_event("GET", "/health/live"))[0] == 200


def test_openapi_document(http: Handler) -> None:
    status, _, doc = _call(http, http_event("GET", "/openapi.json"))
    assert status == 200
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    paths = doc["paths"]
    assert paths["/users/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in paths["/auth/login"]["post"]
    assert "/openapi.json" not in paths
    register_body = paths["/auth/register"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert register_body  # generated from the pydantic model

    def schema(path: str, method: str, status: str) -> Any:
        return paths[path][method]["responses"][status]["content"]["application/json"]["schema"]

    assert schema("/auth/register", "post", "201") == {"$ref": "#/components/schemas/TokenPairOut"}
    # Error statuses name their codes (chatflow.http.schemas.coded_error_schema).
    assert error_codes_of(schema("/auth/login", "post", "401")) == ["invalid_credentials"]
    assert error_codes_of(schema("/auth/login", "post", "400")) == ["malformed_json"]
    assert error_codes_of(schema("/auth/login", "post", "415")) == ["unsupported_media_type"]
    assert error_codes_of(schema("/rooms/{room_id}", "get", "404")) == ["room_not_found"]
    assert error_codes_of(schema("/rooms", "post", "409")) == ["name_taken"]
    # API Gateway's own answers on bearer routes, beside the app's.
    unauthorized = schema("/users/me", "get", "401")["anyOf"]
    assert {"$ref": "#/components/schemas/GatewayMessageOut"} in unauthorized
    app_codes = ["token_revoked", "account_disabled", "unauthorized"]
    assert any(error_codes_of(s) == app_codes for s in unauthorized)
    assert schema("/users/me", "get", "403") == {"$ref": "#/components/schemas/GatewayMessageOut"}
    assert doc["components"]["schemas"]["GatewayMessageOut"]["required"] == ["message"]
    # Every documented 422 is our error shape (with "invalid"), also on routes that did not declare it.
    for operations in paths.values():
        for operation in operations.values():
            invalid = operation["responses"].get("422")
            if invalid:
                shape = invalid["content"]["application/json"]["schema"]
                assert shape == {"$ref": "#/components/schemas/ErrorOut"} or "invalid" in (
                    error_codes_of(shape) or []
                ), shape


def _catalog_http_api_routes() -> set[tuple[str, str]]:
    return {(r.method, r.path) for r in HTTP_ROUTES if r.function == "http_api"}


def test_every_catalog_route_is_served_and_vice_versa(chatflow_env: dict[str, str]) -> None:
    app = load_handler_module("http_api").app
    served = {(method, re.sub(r"<([^>]+)>", r"{\1}", rule)) for method, rule in app.route_rules}
    catalog = _catalog_http_api_routes()
    assert catalog - served == set(), "catalog routes the http_api resolver does not serve"
    assert served - catalog == set(), "resolver routes API Gateway would never send (add to infra/catalog.py)"


def test_catalog_authorizer_matches_openapi_security(http: Handler) -> None:
    _, _, doc = _call(http, http_event("GET", "/openapi.json"))
    for route in HTTP_ROUTES:
        if route.function != "http_api" or route.path == "/openapi.json":
            continue
        operation = doc["paths"][route.path][route.method.lower()]
        assert bool(operation.get("security")) == (route.authorizer is not None), route.route_key


def test_requests_are_logged_without_tokens_and_with_correlation_id(
    api: HttpApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    pair = register(api)
    with caplog.at_level(logging.DEBUG):
        resp = api.get("/users/me", token=pair["accessToken"])
    assert resp.status == 200
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "request" in logged
    assert pair["accessToken"] not in logged
    assert pair["refreshToken"] not in logged
    module = load_handler_module("http_api")
    assert resp.event is not None
    assert module.logger.get_correlation_id() == resp.event["requestContext"]["requestId"]


def test_base64_json_body_is_accepted(http: Handler) -> None:
    event = http_event(
        "POST", "/auth/login", body=base64.b64decode(base64.b64encode(b'{"handle":"nobody1","password":"x"}'))
    )
    event["headers"]["content-type"] = "application/json"
    status, _, body = _call(http, event)
    assert status == 401
    _assert_error(body, "invalid_credentials")


def test_body_that_is_not_utf8_text_is_400_not_500(http: Handler) -> None:
    # API Gateway base64-encodes bodies it cannot pass as text; Powertools' decode raised.
    event = http_event("POST", "/auth/login", body=b"\xff\xfe\x00")
    event["headers"]["content-type"] = "application/json"
    status, _, body = _call(http, event)
    assert status == 400
    _assert_error(body, "malformed_json")


def test_body_whose_base64_is_broken_is_400_not_500(http: Handler) -> None:
    event = http_event("POST", "/auth/login", json={"handle": "a", "password": "b"})
    event.update(body="eyJ", isBase64Encoded=True)
    status, _, body = _call(http, event)
    assert status == 400
    _assert_error(body, "malformed_json")


@pytest.mark.parametrize("nested", ["[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000])
def test_json_nested_too_deep_is_400_not_500(http: Handler, nested: str) -> None:
    # 10 kB, under the size limit; json.loads hits the recursion limit (RecursionError).
    event = http_event("POST", "/auth/login", body=nested, headers={"content-type": "application/json"})
    status, _, body = _call(http, event)
    assert status == 400
    _assert_error(body, "malformed_json")


def test_routes_use_the_checked_identity_even_after_another_app_was_built(
    api: HttpApiClient, container: Container
) -> None:
    """Another app built in the same process (its own routers) must not change what the
    function's routes see: the identity ensure_active checked (current role from the database)."""
    from chatflow.http.app import create_app
    from tests.support.identity import promote, unique_handle

    handle = unique_handle("adm")
    admin = register(api, handle)  # token says role "user"
    promote(handle)
    create_app(container)  # e.g. a test or tool building its own resolver
    target = register(api)
    resp = api.post(f"/admin/users/{target['user']['id']}/ban", token=admin["accessToken"])
    assert resp.status == 200, resp.body


def test_requests_emit_emf_metrics(http: Handler, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    _call(http, http_event("GET", "/no/such/route", route_key="$default"))
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert emf, "no EMF document printed"
    doc = emf[-1]
    names = {m["Name"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"HttpRequests", "Http4xx"} <= names
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ChatflowTest"


def test_dependency_outage_is_503_not_500(api: HttpApiClient, broken: Any) -> None:
    pair = register(api)
    assert api.get("/users/me", token=pair["accessToken"]).status == 200  # status cached in Redis
    broken("postgres")
    api = http_client()  # the functions cold-started with the broken setting
    # ensure_active is served by the Redis cache; the route's own query fails -> 503.
    resp = api.get("/users/me", token=pair["accessToken"])
    assert resp.status == 503, resp.body
    _assert_error(resp.json, "unavailable")
    broken("redis")
    api = http_client()
    # Now the ban check itself cannot be answered: refuse with 503 before routing.
    resp = api.get("/users/me", token=pair["accessToken"])
    assert resp.status == 503, resp.body
    _assert_error(resp.json, "unavailable")
