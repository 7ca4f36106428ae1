"""Per-route throttles (issue 10 §4): every ``/auth/*`` route of the HTTP API and the WebSocket
``$connect`` route carry their own rate/burst limits, below the stage's, in every environment.

They are applied by UpdateStage after the routes exist (infra/api.py ``_route_throttles``): the
assertions read the custom resources' SDK calls from the synthesized templates (dev from the
shared app, prod from its own synth) and every environment's limits from cdk.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra import catalog
from infra.config import ENVIRONMENTS, ConfigError, from_mapping
from tests.infra.conftest import cdk_context

pytestmark = pytest.mark.infra

Json = dict[str, Any]
AUTH_ROUTE_KEYS = sorted(r.route_key for r in catalog.HTTP_ROUTES if r.path.startswith("/auth/"))


def _calls(routes_template: Json) -> dict[str, Json]:
    """{"Http"|"Ws": the decoded UpdateStage call} of the ApiRoutes stack's custom resources."""
    found: dict[str, Json] = {}
    for logical_id, resource in routes_template["Resources"].items():
        if resource["Type"] != "Custom::AWS":
            continue
        props = resource["Properties"]
        create = props["Create"]
        assert props["Update"] == create  # re-applied when limits or routes change
        # The API id is a cross-stack reference: render it as a placeholder to read the JSON.
        parts = create["Fn::Join"][1] if isinstance(create, dict) else [create]
        call = json.loads("".join(p if isinstance(p, str) else "API_ID" for p in parts))
        call["dependsOn"] = resource.get("DependsOn", [])
        found[logical_id[:2] if logical_id.startswith("Ws") else "Http"] = call
    return found


def _check(routes_template: Json, config_env: str) -> None:
    config = from_mapping({**cdk_context(), "env": config_env})
    calls = _calls(routes_template)
    assert set(calls) == {"Http", "Ws"}
    http, ws = calls["Http"], calls["Ws"]
    assert (http["service"], http["action"]) == ("ApiGatewayV2", "UpdateStage")
    assert http["parameters"]["StageName"] == "$default"
    settings = http["parameters"]["RouteSettings"]
    assert sorted(settings) == AUTH_ROUTE_KEYS
    assert {"POST /auth/login", "POST /auth/register", "POST /auth/refresh"} <= set(settings)
    for value in settings.values():
        assert value["ThrottlingRateLimit"] == config.auth_rate_limit
        assert value["ThrottlingBurstLimit"] == config.auth_burst_limit
        assert value["DetailedMetricsEnabled"] is True
    ws_settings = ws["parameters"]["RouteSettings"]
    assert ws["parameters"]["StageName"] == "v1"
    assert list(ws_settings) == ["$connect"]
    assert ws_settings["$connect"]["ThrottlingRateLimit"] == config.connect_rate_limit
    assert ws_settings["$connect"]["ThrottlingBurstLimit"] == config.connect_burst_limit
    # Applied after the routes exist (API Gateway refuses settings for unknown route keys).
    assert any(d.startswith("WsRouteconnect") for d in ws["dependsOn"])
    for key in AUTH_ROUTE_KEYS:
        route_ids = "".join(c for c in key if c.isalnum())
        assert any(d.startswith(f"HttpRoute{route_ids}") for d in http["dependsOn"]), key


def test_dev_throttles_every_auth_route_and_connect(template_json: dict[str, Json]) -> None:
    _check(template_json["ApiRoutes"], "dev")


def test_prod_throttles_every_auth_route_and_connect(prod_out: Path) -> None:
    _check(json.loads((prod_out / "Chatflow-prod-ApiRoutes.template.json").read_text()), "prod")


def test_the_provider_may_only_update_the_two_stages(template_json: dict[str, Json]) -> None:
    policies = [
        r
        for r in template_json["ApiRoutes"]["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and "RouteThrottles" in json.dumps(r)
    ]
    assert len(policies) == 2
    for policy in policies:
        (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Action"] == "apigateway:PATCH"
        assert "/stages/" in json.dumps(statement["Resource"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_sets_route_limits_below_its_stage(env: str) -> None:
    table = cdk_context()["chatflow:environments"][env]
    for key in ("authRateLimit", "authBurstLimit", "connectRateLimit", "connectBurstLimit"):
        assert key in table, f"{env}: {key} is set explicitly in cdk.json"
    config = from_mapping({**cdk_context(), "env": env})
    assert 0 < config.auth_rate_limit < config.http_rate_limit
    assert 0 < config.connect_rate_limit < config.ws_rate_limit
    assert config.auth_burst_limit <= config.http_burst_limit
    assert config.connect_burst_limit <= config.ws_burst_limit


def test_a_route_limit_above_the_stage_is_refused() -> None:
    with pytest.raises(ConfigError, match="authRateLimit"):
        from_mapping({**cdk_context(), "env": "dev", "chatflow:authRateLimit": "100000"})
