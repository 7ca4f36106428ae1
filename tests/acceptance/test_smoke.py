"""The read-only smoke subset (marker ``smoke``): safe on production, it creates NOTHING -- no user,
room, message, sign-in failure or token. Health (docs/http-api.md "Health"), the public documents
(OpenAPI, JWKS), and the refusals a request without valid credentials gets on both APIs
(docs/http-api.md, docs/auth.md, docs/protocol.md "Connecting"). The deploy workflow runs it after
every deploy (``make e2e SMOKE=1``)."""

from __future__ import annotations

import uuid

import pytest

from tests.acceptance.support import Http, handshake_status, run
from tests.e2e.target import Target

pytestmark = pytest.mark.smoke

#: Structurally a JWT, signed by nobody: every verifier must refuse it.
FORGED = (
    "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9."
    "eyJzdWIiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAiLCJleHAiOjQxMDI0NDQ4MDB9.c2lnbmF0dXJl"
)
UNSIGNED = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."


async def _get(target: Target, path: str, token: str | None = None) -> tuple[int, object, dict[str, str]]:
    http = Http(target.http_url)
    try:
        answer = await http.call("GET", path, token=token)
        return answer.status, answer.json, dict(answer.headers)
    finally:
        await http.close()


def test_liveness_answers_ok(e2e_target: Target) -> None:
    status, body, _ = run(lambda: _get(e2e_target, "/health/live"))
    assert (status, body) == (200, {"status": "ok"})


def test_readiness_reports_postgres_and_redis_ok_with_latency(e2e_target: Target) -> None:
    status, body, _ = run(lambda: _get(e2e_target, "/health/ready"))
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["status"] == "ok"
    checks = body["checks"]
    assert len(checks) >= 2, checks  # Postgres and Redis
    for name, check in checks.items():
        assert check["ok"] is True, name
        assert isinstance(check["latencyMs"], int | float), name


def test_openapi_document_lists_every_documented_route(e2e_target: Target) -> None:
    status, body, _ = run(lambda: _get(e2e_target, "/openapi.json"))
    assert status == 200
    assert isinstance(body, dict)
    paths = body["paths"]
    documented = {
        "/health/live": "get",
        "/health/ready": "get",
        "/auth/register": "post",
        "/auth/login": "post",
        "/auth/refresh": "post",
        "/auth/logout": "post",
        "/auth/password": "post",
        "/.well-known/jwks.json": "get",
        "/users/me": "get",
        "/rooms": "post",
        "/rooms/{room_id}": "get",
        "/rooms/{room_id}/join": "post",
        "/rooms/{room_id}/leave": "post",
        "/rooms/{room_id}/members": "post",
        "/dms": "post",
        "/rooms/{room_id}/messages": "get",
        "/rooms/{room_id}/read": "post",
        "/notifications": "get",
        "/notifications/read": "post",
        "/admin/analytics": "get",
    }
    # Path parameter names are the server's; compare on the shape of the path.
    shapes = {_shape(p): {m.lower() for m in ops} for p, ops in paths.items()}
    missing = [f"{m.upper()} {p}" for p, m in documented.items() if m not in shapes.get(_shape(p), set())]
    assert not missing, missing
    assert "bearerAuth" in body["components"]["securitySchemes"]


def _shape(path: str) -> str:
    import re

    return re.sub(r"\{[^}]+\}", "{}", path)


def test_jwks_publishes_es256_keys_for_a_while(e2e_target: Target) -> None:
    status, body, headers = run(lambda: _get(e2e_target, "/.well-known/jwks.json"))
    assert status == 200
    assert isinstance(body, dict)
    assert body["keys"], body
    for key in body["keys"]:
        assert (key["kty"], key["crv"]) == ("EC", "P-256")
        assert key["kid"]
        assert "d" not in key  # never the private half
    assert "max-age=300" in headers.get("Cache-Control", "")


@pytest.mark.parametrize("path", ["/users/me", "/rooms", "/notifications", "/admin/analytics"])
def test_a_bearer_route_without_a_token_is_401_from_the_gateway(e2e_target: Target, path: str) -> None:
    status, body, _ = run(lambda: _get(e2e_target, path))
    assert (status, body) == (401, {"message": "Unauthorized"})


@pytest.mark.parametrize("token", [FORGED, UNSIGNED, "not-a-jwt"], ids=["forged", "alg-none", "garbage"])
def test_a_bearer_route_with_a_refused_token_is_403_from_the_gateway(e2e_target: Target, token: str) -> None:
    status, body, _ = run(lambda: _get(e2e_target, "/users/me", token))
    assert (status, body) == (403, {"message": "Forbidden"})


def test_an_unknown_path_is_404(e2e_target: Target) -> None:
    status, _, _ = run(lambda: _get(e2e_target, "/no/such/route"))
    assert status == 404


def test_messages_are_not_sent_over_http_and_unknown_methods_are_404(e2e_target: Target) -> None:
    """The HTTP API has explicit routes only: an unrouted method/path is answered 404 by the
    gateway itself, before any authorizer (a routed one without a token would be 401)."""

    async def scenario() -> list[tuple[int, object]]:
        http = Http(e2e_target.http_url)
        try:
            out = []
            for method, path in (("POST", f"/rooms/{uuid.uuid4()}/messages"), ("DELETE", "/users/me")):
                answer = await http.call(method, path, json_body={} if method == "POST" else None)
                out.append((answer.status, answer.json))
            return out
        finally:
            await http.close()

    for status, body in run(scenario):
        assert (status, body) == (404, {"message": "Not Found"})


def test_a_handshake_without_a_token_is_refused_401(e2e_target: Target) -> None:
    assert run(lambda: handshake_status(e2e_target, None)) == 401


@pytest.mark.parametrize("token", [FORGED, UNSIGNED], ids=["forged", "alg-none"])
def test_a_handshake_with_a_refused_token_is_refused_403(e2e_target: Target, token: str) -> None:
    assert run(lambda: handshake_status(e2e_target, token)) == 403


def test_an_unknown_refresh_token_is_401_invalid_refresh_token(e2e_target: Target) -> None:
    async def scenario() -> tuple[int, str | None]:
        http = Http(e2e_target.http_url)
        try:
            answer = await http.call("POST", "/auth/refresh", json_body={"refreshToken": "rt_" + "0" * 43})
            return answer.status, answer.error_code
        finally:
            await http.close()

    assert run(scenario) == (401, "invalid_refresh_token")
