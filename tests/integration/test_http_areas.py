"""The HTTP app's areas (chatflow.http.app.AREAS): an on-demand cold start includes only the
router of its first request's area, so every path must map to the area that serves it -- else a
route would be missing, or a wrong method would answer 404 instead of 405 -- and a lazily built
app must answer exactly as an eagerly built one (the local stack's workers run it lazily, so the
end-to-end suites cover every route that way too)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from chatflow.container import Container
from chatflow.http.app import AREAS, area_of, create_app
from infra.catalog import HTTP_ROUTES
from tests.support.apigw import http_event, lambda_context

_PARAM = re.compile(r"<[^>]+>|\{[^}]+\}")


def _concrete(rule: str) -> str:
    return _PARAM.sub("p1", rule)


def _resolve(app: Any, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    raw = app.resolve(event, lambda_context())
    headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
    return raw["statusCode"], headers, json.loads(raw["body"]) if raw.get("body") else None


@pytest.mark.parametrize("area", [name for name, _ in AREAS])
def test_every_route_of_an_area_maps_to_that_area(container: Container, area: str) -> None:
    app = create_app(container, eager=False)
    app.load_area(area)
    rules = [(method, rule) for method, rule in app.route_rules if rule != "/openapi.json"]
    assert rules, f"area {area} has no routes"
    for method, rule in rules:
        assert area_of(_concrete(rule)) == area, f"{method} {rule} is served by {area}"


def test_every_catalog_route_has_an_area_and_the_areas_serve_the_catalog(container: Container) -> None:
    app = create_app(container, eager=False)
    assert app.loaded_areas == set()
    app.load_all_areas()
    served = {(m, _concrete(r)) for m, r in app.route_rules}
    declared = {(r.method, _concrete(r.path)) for r in HTTP_ROUTES}
    assert served == declared
    for method, path in declared - {("GET", "/openapi.json")}:
        assert area_of(path) is not None, f"{method} {path}"


def test_a_lazy_app_loads_one_area_per_first_request_and_answers_like_an_eager_one(
    container: Container,
) -> None:
    lazy = create_app(container, eager=False)

    status, _, body = _resolve(lazy, http_event("GET", "/health/live"))
    assert status == 200, body
    assert lazy.loaded_areas == {"health"}

    # A known path, other method: 405 with Allow (the path's area is loaded before routing).
    status, headers, body = _resolve(lazy, http_event("DELETE", "/users/me", route_key="$default"))
    assert (status, headers.get("allow"), body["error"]["code"]) == (405, "GET", "method_not_allowed")
    assert lazy.loaded_areas == {"health", "users"}

    # Unknown paths load nothing.
    status, _, body = _resolve(lazy, http_event("GET", "/no/such/route", route_key="$default"))
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert lazy.loaded_areas == {"health", "users"}

    # A bearer route without a token is the same 401 either way (checked before the route runs).
    for app in (lazy, create_app(container)):
        status, _, body = _resolve(app, http_event("GET", "/rooms", route_key="GET /rooms"))
        assert status == 401, body

    # The OpenAPI document describes every route, whatever was loaded before.
    _, _, lazy_doc = _resolve(lazy, http_event("GET", "/openapi.json"))
    _, _, eager_doc = _resolve(create_app(container), http_event("GET", "/openapi.json"))
    assert lazy.loaded_areas == {name for name, _ in AREAS}
    assert lazy_doc == eager_doc


def test_a_stage_prefix_is_not_part_of_the_area_path(container: Container) -> None:
    """A named stage's rawPath starts with the stage; the area is chosen from the route path."""
    app = create_app(container, eager=False)
    event = http_event("GET", "/health/live")
    event["rawPath"] = "/prod/health/live"
    event["requestContext"]["stage"] = "prod"
    status, _, body = _resolve(app, event)
    assert status == 200, body
    assert app.loaded_areas == {"health"}
