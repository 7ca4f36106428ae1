"""Nothing a client sends comes back: non-JSON bodies are refused with 415 before anything is
parsed, and validation errors name fields, never their values.

Every body route of the app (from its OpenAPI document) with every non-JSON way of sending a body
-- no Content-Type, a form, multipart (base64, as API Gateway passes it), text, XML -- carrying a
secret: 415 ``unsupported_media_type`` and the secret appears nowhere in the answer. Then JSON
bodies, queries and paths that fail validation in every way we can think of, with the secret in
the offending value (or key): 422/400 and no secret. Through the real authorizer and http_api.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

import pytest

from tests.support.apigw import HttpApiClient, HttpResponse
from tests.support.identity import http_client, register

SECRET = "Sw0rdf1sh-hunter2-Secret"
ROOM = "8a6c3c58-7a0c-4e55-9d7b-5d7cd3a4c8e1"
USER = "0b3e5d0e-3a55-4f0e-9a47-1f0c7a1c2b3d"


@pytest.fixture(scope="module")
def api(chatflow_env: dict[str, str]) -> HttpApiClient:
    return http_client()


@pytest.fixture(scope="module")
def token(api: HttpApiClient) -> str:
    return str(register(api)["accessToken"])


@pytest.fixture(scope="module")
def body_routes(api: HttpApiClient) -> list[tuple[str, str]]:
    doc = api.get("/openapi.json").json
    routes = [
        (method.upper(), path)
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    assert len(routes) >= 10, routes
    return routes


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "1" if m.group(0) == "{seq}" else ROOM, path)


def _assert_no_secret(resp: HttpResponse) -> None:
    assert SECRET not in resp.body
    assert SECRET.lower() not in resp.body.lower()
    assert all(SECRET not in value for value in resp.headers.values())


_JSON_WITH_SECRET = json.dumps({"handle": "ada", "password": SECRET, "name": SECRET, "body": SECRET})
_BOUNDARY = "x-boundary-7"
NON_JSON: list[tuple[str, dict[str, str], str | bytes]] = [
    ("no content type", {}, _JSON_WITH_SECRET),
    ("curl's default form", {"content-type": "application/x-www-form-urlencoded"}, _JSON_WITH_SECRET),
    (
        "a real form",
        {"content-type": "application/x-www-form-urlencoded"},
        urllib.parse.urlencode({"handle": "ada", "password": SECRET}),
    ),
    (
        "multipart",
        {"content-type": f"multipart/form-data; boundary={_BOUNDARY}"},
        (
            f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="password"\r\n\r\n{SECRET}\r\n'
            f"--{_BOUNDARY}--\r\n"
        ).encode(),
    ),
    ("text", {"content-type": "text/plain"}, _JSON_WITH_SECRET),
    ("text, charset", {"content-type": "text/plain; charset=utf-8"}, SECRET),
    ("xml", {"content-type": "application/xml"}, f"<password>{SECRET}</password>"),
    ("json-ish", {"content-type": "application/jsonp"}, _JSON_WITH_SECRET),
]


@pytest.mark.parametrize(("label", "headers", "body"), NON_JSON, ids=[c[0] for c in NON_JSON])
def test_non_json_body_is_415_on_every_body_route(
    api: HttpApiClient,
    token: str,
    body_routes: list[tuple[str, str]],
    label: str,
    headers: dict[str, str],
    body: str | bytes,
) -> None:
    for method, path in body_routes:
        resp = api.request(method, _concrete(path), token=token, body=body, headers=headers)
        assert resp.status == 415, (label, method, path, resp.body)
        assert resp.json["error"]["code"] == "unsupported_media_type", (method, path)
        _assert_no_secret(resp)


def test_json_with_a_charset_is_json(api: HttpApiClient) -> None:
    resp = api.post(
        "/auth/login",
        body=json.dumps({"handle": "nobody1", "password": SECRET}),
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )
    assert resp.status == 401, resp.body
    assert resp.json["error"]["code"] == "invalid_credentials"
    _assert_no_secret(resp)


def test_empty_body_without_type_is_a_missing_body(api: HttpApiClient, token: str) -> None:
    resp = api.post("/rooms", token=token, body="")
    assert resp.status == 422, resp.body
    assert resp.json["error"]["code"] == "invalid"


# (method, path, json body or None, query or None, expected status)
INVALID: list[tuple[str, str, Any, dict[str, str] | None, int]] = [
    ("POST", "/auth/login", {"handle": "ada", "password": SECRET, SECRET: 1}, None, 422),
    ("POST", "/auth/login", {"handle": "ada", "password": SECRET, f"{SECRET} x": 1}, None, 422),
    ("POST", "/auth/login", {"handle": SECRET * 10, "password": ""}, None, 422),
    ("POST", "/auth/login", {"handle": ["ada"], "password": [SECRET]}, None, 422),
    ("POST", "/auth/register", {"handle": SECRET + "!", "password": SECRET}, None, 422),
    (
        "POST",
        "/auth/register",
        {"handle": "ok_handle", "password": "short", "displayName": SECRET * 5},
        None,
        422,
    ),
    ("POST", "/auth/refresh", {"refreshToken": SECRET * 20}, None, 422),
    ("POST", "/auth/refresh", {"refreshToken": {"nested": SECRET}}, None, 422),
    ("POST", "/auth/logout", {"refreshToken": 12, "other": SECRET}, {"all": SECRET}, 422),
    ("POST", "/auth/password", {"currentPassword": SECRET, "newPassword": "short"}, None, 422),
    ("POST", "/auth/password", {"currentPassword": SECRET, "newPassword": SECRET, SECRET: 1}, None, 422),
    ("POST", "/auth/password", {"currentPassword": [SECRET], "newPassword": SECRET * 10}, None, 422),
    ("POST", "/rooms", {"kind": SECRET, "name": SECRET * 10}, None, 422),
    ("POST", "/rooms", {"kind": "public", "name": 5, SECRET: SECRET}, None, 422),
    ("POST", "/dms", {"userId": SECRET, "handle": SECRET}, None, 422),
    ("POST", f"/rooms/{ROOM}/members", {"userId": SECRET}, None, 422),
    ("POST", f"/rooms/{ROOM}/read", {"seq": SECRET}, None, 422),
    ("PATCH", f"/rooms/{ROOM}/messages/1", {"body": [SECRET]}, None, 422),
    ("POST", "/notifications/read", {"roomIds": [SECRET], "ids": [SECRET], "all": SECRET}, None, 422),
    ("GET", "/rooms", None, {"scope": SECRET, "limit": SECRET, "cursor": SECRET * 30}, 422),
    ("GET", f"/rooms/{SECRET}", None, None, 422),
    ("GET", f"/rooms/{ROOM}/messages", None, {"before": SECRET, "after": SECRET}, 422),
    ("PATCH", f"/rooms/{ROOM}/messages/{SECRET}", {"body": "x"}, None, 422),
    ("DELETE", f"/rooms/{ROOM}/members/{SECRET}", None, None, 422),
    ("GET", "/notifications", None, {"unreadOnly": SECRET, "before": SECRET}, 422),
    ("GET", "/admin/analytics", None, {"from": SECRET, "roomId": SECRET}, 422),
    ("POST", f"/admin/users/{SECRET}/ban", None, None, 422),
]


@pytest.mark.parametrize(("method", "path", "body", "query", "status"), INVALID)
def test_validation_errors_never_echo_the_input(
    api: HttpApiClient,
    token: str,
    method: str,
    path: str,
    body: Any,
    query: dict[str, str] | None,
    status: int,
) -> None:
    resp = api.request(method, path, token=token, json=body, query=query)
    assert resp.status == status, resp.body
    _assert_no_secret(resp)
    fields = resp.json["error"]["details"]["fields"]
    assert fields, resp.body
    for field in fields:
        assert set(field) == {"loc", "type", "message"}


def test_unknown_field_names_are_named_only_when_they_look_like_names(api: HttpApiClient) -> None:
    resp = api.post("/auth/login", json={"handle": "ada", "password": "x", "colour": 1, '{"a": "b"}': 2})
    assert resp.status == 422
    locs = {tuple(f["loc"]) for f in resp.json["error"]["details"]["fields"]}
    assert locs == {("body", "colour"), ("body", "?")}


def test_malformed_json_does_not_echo_the_body(api: HttpApiClient) -> None:
    resp = api.post(
        "/auth/login",
        body='{"handle": "ada", "password": "' + SECRET,
        headers={"content-type": "application/json"},
    )
    assert resp.status == 400
    assert resp.json["error"]["code"] == "malformed_json"
    _assert_no_secret(resp)
