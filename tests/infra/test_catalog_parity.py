"""The synthesized CDK template and the local gateway agree: routes, integrations, authorizers, route
responses, CORS and function settings. Both read infra/catalog.py; this proves neither drifted.

The local side is the gateway's own objects (WebSocketApi, HttpApi, LambdaRuntime) built from the
catalog exactly as ``python -m local_stack`` builds them, not the catalog itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.common import pascal
from local_stack.catalog_view import GatewayCatalog
from local_stack.http_api import CorsConfig, HttpApi
from local_stack.lambda_runtime import LambdaRuntime
from local_stack.websocket_api import WebSocketApi

pytestmark = pytest.mark.infra

Resources = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def local() -> tuple[WebSocketApi, HttpApi, LambdaRuntime]:
    catalog = GatewayCatalog.from_catalog()
    catalog.validate()
    runtime = LambdaRuntime({"PATH": "/usr/bin:/bin"}, functions=catalog.functions)  # no process yet
    return WebSocketApi(catalog, runtime), HttpApi(catalog, runtime, cors=CorsConfig()), runtime


def _resources(template: dict[str, Any], kind: str) -> Resources:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == kind}


def _output_name(value: Any) -> str:
    """The Fn::GetStackOutput output name inside an integration/authorizer URI."""
    if isinstance(value, dict):
        if "Fn::GetStackOutput" in value:
            return str(value["Fn::GetStackOutput"]["OutputName"])
        for inner in value.values():
            found = _output_name(inner)
            if found:
                return found
    if isinstance(value, list):
        for inner in value:
            found = _output_name(inner)
            if found:
                return found
    return ""


class Resolver:
    """Template references -> catalog function names."""

    def __init__(self, template_json: dict[str, dict[str, Any]], function_names: list[str]) -> None:
        self.functions_template = template_json["Functions"]
        self.routes_template = template_json["ApiRoutes"]
        self.lambdas = _resources(self.functions_template, "AWS::Lambda::Function")
        self.aliases = _resources(self.functions_template, "AWS::Lambda::Alias")
        self.by_logical_id: dict[str, str] = {}
        for name in function_names:
            matches = [lid for lid in self.lambdas if lid.startswith(f"{pascal(name)}Fn")]
            assert len(matches) == 1, (name, matches)
            self.by_logical_id[matches[0]] = name

    def function_of_uri(self, uri: Any) -> str:
        output = self.functions_template["Outputs"][_output_name(uri)]["Value"]
        if "Fn::GetAtt" in output:
            logical_id = output["Fn::GetAtt"][0]
        else:  # an alias (SnapStart functions are invoked through their "live" alias)
            logical_id = self.aliases[output["Ref"]]["FunctionName"]["Ref"]
        return self.by_logical_id[logical_id]

    def integration_function(self, target: Any) -> str:
        integration_id = target["Fn::Join"][1][1]["Ref"]
        integration = _resources(self.routes_template, "AWS::ApiGatewayV2::Integration")[integration_id]
        return self.function_of_uri(integration["IntegrationUri"])


@pytest.fixture(scope="module")
def resolver(
    template_json: dict[str, dict[str, Any]], local: tuple[WebSocketApi, HttpApi, LambdaRuntime]
) -> Resolver:
    return Resolver(template_json, list(local[2].pools))


def _split_routes(template_json: dict[str, dict[str, Any]]) -> tuple[Resources, Resources]:
    routes = _resources(template_json["ApiRoutes"], "AWS::ApiGatewayV2::Route")
    ws: Resources = {}
    http: Resources = {}
    for logical_id, props in routes.items():
        # HTTP route keys are "METHOD /path"; WebSocket ones are "$connect", "sendMessage", ...
        (http if " " in props["RouteKey"] else ws)[logical_id] = props
    return ws, http


def test_websocket_routes_and_integrations_agree(
    template_json: dict[str, dict[str, Any]],
    local: tuple[WebSocketApi, HttpApi, LambdaRuntime],
    resolver: Resolver,
) -> None:
    ws_api = local[0]
    ws_routes, _ = _split_routes(template_json)
    cloud = {p["RouteKey"]: resolver.integration_function(p["Target"]) for p in ws_routes.values()}
    assert cloud == {key: route.function for key, route in ws_api.routes.items()}
    api = next(
        p
        for p in _resources(template_json["Api"], "AWS::ApiGatewayV2::Api").values()
        if p["ProtocolType"] == "WEBSOCKET"
    )
    assert api["RouteSelectionExpression"] == ws_api.catalog.route_selection_expression


def test_route_responses_agree(
    template_json: dict[str, dict[str, Any]], local: tuple[WebSocketApi, HttpApi, LambdaRuntime]
) -> None:
    ws_routes, _ = _split_routes(template_json)
    responses = _resources(template_json["ApiRoutes"], "AWS::ApiGatewayV2::RouteResponse")
    cloud = {ws_routes[p["RouteId"]["Ref"]]["RouteKey"] for p in responses.values()}
    assert cloud == {key for key, route in local[0].routes.items() if route.route_response}


def test_authorizers_agree(
    template_json: dict[str, dict[str, Any]],
    local: tuple[WebSocketApi, HttpApi, LambdaRuntime],
    resolver: Resolver,
) -> None:
    ws_api, http_api, _ = local
    ws_routes, _ = _split_routes(template_json)
    cloud_authorizers = _resources(template_json["ApiRoutes"], "AWS::ApiGatewayV2::Authorizer")
    # WebSocket: only $connect is authorized, by the same function with the same identity source,
    # and never cached (no TTL exists for WebSocket authorizers; the local runner does not cache).
    authorized = {p["RouteKey"]: p for p in ws_routes.values() if p.get("AuthorizationType") == "CUSTOM"}
    assert set(authorized) == {"$connect"}
    cloud_ws = cloud_authorizers[authorized["$connect"]["AuthorizerId"]["Ref"]]
    runner = ws_api.connect_authorizer
    assert runner is not None
    assert cloud_ws["Name"] == runner.authorizer.name
    assert cloud_ws["AuthorizerType"] == "REQUEST"
    assert cloud_ws["IdentitySource"] == list(runner.authorizer.identity_sources)
    assert resolver.function_of_uri(cloud_ws["AuthorizerUri"]) == runner.authorizer.function
    assert cloud_ws.get("AuthorizerResultTtlInSeconds", 0) == runner.effective_ttl_s == 0
    # HTTP: same name, source, function, TTL; payload 2.0 (simple responses are understood locally).
    for name, http_runner in http_api.authorizers.items():
        cloud_http = next(p for p in cloud_authorizers.values() if p["Name"] == name)
        assert cloud_http["IdentitySource"] == list(http_runner.authorizer.identity_sources)
        assert cloud_http["AuthorizerResultTtlInSeconds"] == http_runner.effective_ttl_s
        assert cloud_http["AuthorizerPayloadFormatVersion"] == "2.0"
        assert cloud_http.get("EnableSimpleResponses") is True
        assert resolver.function_of_uri(cloud_http["AuthorizerUri"]) == http_runner.authorizer.function


def test_http_routes_integrations_and_authorizers_agree(
    template_json: dict[str, dict[str, Any]],
    local: tuple[WebSocketApi, HttpApi, LambdaRuntime],
    resolver: Resolver,
) -> None:
    _, http_routes = _split_routes(template_json)
    cloud_authorizers = _resources(template_json["ApiRoutes"], "AWS::ApiGatewayV2::Authorizer")
    cloud = {
        p["RouteKey"]: (
            resolver.integration_function(p["Target"]),
            cloud_authorizers[p["AuthorizerId"]["Ref"]]["Name"] if p.get("AuthorizerId") else None,
        )
        for p in http_routes.values()
    }
    local_routes = {c.route.route_key: (c.route.function, c.route.authorizer) for c in local[1].routes}
    assert cloud == local_routes
    integrations = _resources(template_json["ApiRoutes"], "AWS::ApiGatewayV2::Integration")
    for props in http_routes.values():
        integration = integrations[props["Target"]["Fn::Join"][1][1]["Ref"]]
        assert integration["PayloadFormatVersion"] == "2.0"  # the only format the local HTTP API emits


def test_cors_agrees(
    template_json: dict[str, dict[str, Any]], local: tuple[WebSocketApi, HttpApi, LambdaRuntime]
) -> None:
    api = next(
        p
        for p in _resources(template_json["Api"], "AWS::ApiGatewayV2::Api").values()
        if p["ProtocolType"] == "HTTP"
    )
    cors = api["CorsConfiguration"]
    mine = local[1].cors
    assert cors["AllowOrigins"] == list(mine.allow_origins)
    assert cors["AllowMethods"] == list(mine.allow_methods)
    assert cors["AllowHeaders"] == list(mine.allow_headers)
    assert cors["MaxAge"] == mine.max_age_s


def test_function_settings_agree(
    local: tuple[WebSocketApi, HttpApi, LambdaRuntime], resolver: Resolver
) -> None:
    runtime = local[2]
    for logical_id, name in resolver.by_logical_id.items():
        cloud = resolver.lambdas[logical_id]
        pool = runtime.pool(name)
        assert cloud["Handler"] == pool.fn.handler, name
        assert cloud["Timeout"] == pool.fn.timeout_s, name
        assert cloud["MemorySize"] == pool.fn.memory_mb, name
        cloud_env = cloud.get("Environment", {}).get("Variables", {})
        for key, value in pool.fn.environment.items():
            assert cloud_env.get(key) == value, (name, key)
            assert pool.env[key] == value, (name, key)
        assert pool.env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == str(cloud["MemorySize"])
        if pool.fn.reserved_concurrency is not None:
            assert cloud["ReservedConcurrentExecutions"] == pool.fn.reserved_concurrency
            assert pool.max_concurrency <= pool.fn.reserved_concurrency


# --- asynchronous delivery: the two stages and their queues ---------------------------------------


def _queue_name(template: dict[str, Any], ref: Any) -> str:
    """The QueueName of the queue an ``Fn::GetAtt [id, Arn]`` points at (in ``template``)."""
    logical_id = ref["Fn::GetAtt"][0]
    return str(template["Resources"][logical_id]["Properties"]["QueueName"])


def test_async_invoke_configs_and_on_failure_queues_agree(
    cdk_app: Any, template_json: dict[str, dict[str, Any]], resolver: Resolver
) -> None:
    """Lambda's second stage: the CDK EventInvokeConfig and the local AsyncLambda read the same
    catalog AsyncInvoke, and the on-failure queue has the catalog's name in both."""
    from infra import catalog

    prefix = cdk_app.config.lower_prefix
    functions = template_json["Functions"]
    configs = _resources(functions, "AWS::Lambda::EventInvokeConfig")
    declared = {fn.name: fn for fn in catalog.FUNCTIONS if fn.async_invoke is not None}
    seen: set[str] = set()
    for props in configs.values():
        ref = props["FunctionName"]["Ref"]
        name = resolver.by_logical_id[ref]
        fn = declared[name]
        assert fn.async_invoke is not None
        seen.add(name)
        assert props["MaximumRetryAttempts"] == fn.async_invoke.max_retry_attempts
        assert props["MaximumEventAgeInSeconds"] == fn.async_invoke.max_event_age_s
        queue = _queue_name(functions, props["DestinationConfig"]["OnFailure"]["Destination"])
        assert queue == catalog.async_failure_queue_name(prefix, name)
    assert seen == set(declared)


def test_rule_targets_retry_policies_and_dlq_names_agree_with_the_local_bus(
    cdk_app: Any, template_json: dict[str, dict[str, Any]]
) -> None:
    """EventBridge's first stage: each target's RetryPolicy and DLQ name, in the template and on the
    local bus built from the same catalog (with the same name prefix)."""
    from infra import catalog
    from local_stack.eventbridge import LocalEventBus

    prefix = cdk_app.config.lower_prefix
    events = template_json["Events"]
    cloud: dict[str, tuple[int, int]] = {}
    for props in _resources(events, "AWS::Events::Rule").values():
        for target in props["Targets"]:
            retry = target["RetryPolicy"]
            queue = _queue_name(events, target["DeadLetterConfig"]["Arn"])
            cloud[queue] = (retry["MaximumRetryAttempts"], retry["MaximumEventAgeInSeconds"])
    bus = LocalEventBus.from_catalog(None, name="chatflow", region="us-east-1", name_prefix=prefix)
    bus.start_schedules(catalog.SCHEDULES, seconds_per_minute=3600.0)  # registers them; never fires here
    try:
        local = {
            target.dead_letter_arn.rsplit(":", 1)[1]: (
                target.retry.maximum_retry_attempts,
                int(target.retry.maximum_event_age_s),
            )
            for rule in [*bus.rules(), *bus.schedule_rules()]
            for target in rule.targets
            if target.dead_letter_arn
        }
    finally:
        bus.close(timeout=1)
    assert cloud == local
    expected = {catalog.target_dlq_name(prefix, r.name, t) for r in catalog.EVENT_RULES for t in r.targets}
    expected |= {catalog.target_dlq_name(prefix, s.name, s.function) for s in catalog.SCHEDULES}
    assert set(local) == expected
