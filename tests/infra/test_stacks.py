"""Assertions on the synthesized templates (one app per session: tests/infra/conftest.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import catalog
from infra.catalog import Need
from infra.common import pascal

pytestmark = pytest.mark.infra

Json = dict[str, Any]


def resources(template: Json, kind: str) -> dict[str, Json]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def statements(template: Json) -> list[tuple[str, Json]]:
    """(policy logical id, statement) for every IAM policy statement in the template."""
    out = []
    for key, policy in resources(template, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            out.append((key, statement))
    return out


def actions(statement: Json) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def function_resource(template: Json, name: str) -> Json:
    prefix = f"{pascal(name)}Fn"
    found = [
        v
        for k, v in resources(template, "AWS::Lambda::Function").items()
        if k.startswith(prefix) and "Role" not in k and "Logs" not in k
    ]
    assert len(found) == 1, f"expected one Lambda function for catalog entry {name!r}"
    return found[0]


def role_statements(template: Json, name: str) -> list[Json]:
    prefix = f"{pascal(name)}FnRole"
    return [s for key, s in statements(template) if key.startswith(prefix)]


# --- functions ------------------------------------------------------------------------------
def test_every_catalog_function_is_deployed_arm64_traced_with_the_layer(
    template_json: dict[str, Json],
) -> None:
    functions = template_json["Functions"]
    assert len(resources(functions, "AWS::Lambda::Function")) == len(catalog.FUNCTIONS)
    for fn in catalog.FUNCTIONS:
        props = function_resource(functions, fn.name)["Properties"]
        assert props["Handler"] == fn.handler
        assert props["Runtime"] in ("python3.12", "python3.13")
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["MemorySize"] == fn.memory_mb
        assert props["Timeout"] == fn.timeout_s
        assert len(props["Layers"]) == 1
        assert props.get("ReservedConcurrentExecutions") == fn.reserved_concurrency
        assert ("SnapStart" in props) == fn.snapstart
        assert props["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "chatflow"
        assert props["Environment"]["Variables"]["PYDANTIC_DISABLE_PLUGINS"] == "__all__"  # cold start
        in_vpc = bool(fn.needs & {Need.POSTGRES, Need.REDIS})
        assert ("VpcConfig" in props) == in_vpc, fn.name


def test_snapstart_functions_are_invoked_through_a_published_alias(template_json: dict[str, Json]) -> None:
    aliases = resources(template_json["Functions"], "AWS::Lambda::Alias")
    snap = [fn for fn in catalog.FUNCTIONS if fn.snapstart]
    assert len(aliases) == len(snap)
    assert all(a["Properties"]["Name"] == "live" for a in aliases.values())


def test_environment_follows_needs(template_json: dict[str, Json]) -> None:
    functions = template_json["Functions"]
    expected = {
        Need.POSTGRES: ("DATABASE_URL", "DATABASE_READER_URL", "DATABASE_IAM_AUTH"),
        Need.REDIS: ("REDIS_URL", "REDIS_AUTH_SECRET_ARN"),
        Need.JWT_SIGN: ("JWT_PRIVATE_KEY_SECRET_ARN",),
        Need.JWT_VERIFY: ("JWT_PUBLIC_KEYS",),
        Need.MANAGE_CONNECTIONS: ("WS_MANAGEMENT_ENDPOINT",),
        Need.PUT_EVENTS: ("EVENT_BUS_NAME",),
        Need.FANOUT_QUEUE: ("FANOUT_QUEUE_URL",),
        Need.NOTIFY_TOPIC: ("NOTIFICATION_TOPIC_ARN",),
    }
    for fn in catalog.FUNCTIONS:
        env = function_resource(functions, fn.name)["Properties"]["Environment"]["Variables"]
        for need, names in expected.items():
            for name in names:
                assert (name in env) == (need in fn.needs), f"{fn.name}: {name}"
        if Need.POSTGRES in fn.needs:
            assert "sslmode=verify-full" in json.dumps(env["DATABASE_URL"])
        if Need.REDIS in fn.needs:
            assert "rediss://" in json.dumps(env["REDIS_URL"])
    # The authorizer verifies with the public key from the bootstrap custom resource: no AWS
    # call at cold start, no secret access.
    authorizer_env = function_resource(functions, "authorizer")["Properties"]["Environment"]["Variables"]
    assert "Fn::GetAtt" in json.dumps(authorizer_env["JWT_PUBLIC_KEYS"])


# --- IAM: least privilege -----------------------------------------------------------------------
def test_no_wildcard_actions_and_no_managed_policies_on_function_roles(
    template_json: dict[str, Json],
) -> None:
    functions = template_json["Functions"]
    for _key, statement in statements(functions):
        for action in actions(statement):
            assert action != "*", action
            assert not action.endswith(":*"), action
    for key, role in resources(functions, "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], key


def test_manage_connections_only_on_the_ws_connections_arns(template_json: dict[str, Json]) -> None:
    functions = template_json["Functions"]
    for fn in catalog.FUNCTIONS:
        granted = [
            s for s in role_statements(functions, fn.name) if "execute-api:ManageConnections" in actions(s)
        ]
        assert bool(granted) == (Need.MANAGE_CONNECTIONS in fn.needs), fn.name
        for statement in granted:
            assert actions(statement) == ["execute-api:ManageConnections"]
            targets = statement["Resource"]
            assert isinstance(targets, list)
            assert len(targets) == 3
            text = [json.dumps(t) for t in targets]
            for method in ("POST", "GET", "DELETE"):
                assert sum(f'"/v1/{method}/@connections/*"' in t for t in text) == 1
            assert all("WsApi" in t for t in text), "must name the WebSocket API, not any API"
    for _key, statement in statements(functions):
        assert not any(a.startswith("execute-api:") for a in actions(statement)) or actions(statement) == [
            "execute-api:ManageConnections"
        ]


def test_put_events_only_on_the_bus_and_db_connect_only_as_the_proxy_user(
    template_json: dict[str, Json],
) -> None:
    functions = template_json["Functions"]
    for fn in catalog.FUNCTIONS:
        mine = role_statements(functions, fn.name)
        put = [s for s in mine if "events:PutEvents" in actions(s)]
        assert bool(put) == (Need.PUT_EVENTS in fn.needs), fn.name
        for statement in put:
            assert json.dumps(statement["Resource"]).endswith(':event-bus/chatflow-dev-bus"]]}')
        connect = [s for s in mine if "rds-db:connect" in actions(s)]
        assert bool(connect) == (Need.POSTGRES in fn.needs), fn.name
        # DML-only runtime user; the schema owner only for the function that migrates.
        user = "chatflow_admin" if fn.name == "migrate" else "chatflow_app"
        for statement in connect:
            assert f'"/{user}"' in json.dumps(statement["Resource"]), fn.name
            assert "Chatflow-dev-DbProxyResourceId" in json.dumps(statement["Resource"])


def test_secrets_are_readable_only_where_needed(template_json: dict[str, Json]) -> None:
    functions = template_json["Functions"]
    for fn in catalog.FUNCTIONS:
        reads = [
            json.dumps(s["Resource"])
            for s in role_statements(functions, fn.name)
            if "secretsmanager:GetSecretValue" in actions(s)
        ]
        assert any("CacheAuthToken" in r for r in reads) == (Need.REDIS in fn.needs), fn.name
        jwt = any("JwtSigningKey" in r for r in reads)
        assert jwt == bool(fn.needs & {Need.JWT_SIGN, Need.JWT_KEYGEN}), fn.name
        # Nobody reads the database master secret: the proxy holds it, functions use IAM tokens.
        assert not any("DbSecret" in r for r in reads), fn.name


# --- encryption and exposure ---------------------------------------------------------------------
def test_database_encrypted_tls_only_and_private(template_json: dict[str, Json]) -> None:
    data = template_json["Data"]
    (cluster,) = resources(data, "AWS::RDS::DBCluster").values()
    assert cluster["Properties"]["StorageEncrypted"] is True
    assert cluster["Properties"]["EnableIAMDatabaseAuthentication"] is True
    params = [
        p["Properties"]["Parameters"] for p in resources(data, "AWS::RDS::DBClusterParameterGroup").values()
    ]
    assert any(p.get("rds.force_ssl") == "1" for p in params)
    for instance in resources(data, "AWS::RDS::DBInstance").values():
        assert instance["Properties"].get("PubliclyAccessible") is not True
    (proxy,) = resources(data, "AWS::RDS::DBProxy").values()
    assert proxy["Properties"]["RequireTLS"] is True
    assert all(a["IAMAuth"] == "REQUIRED" for a in proxy["Properties"]["Auth"])
    assert resources(data, "AWS::SecretsManager::RotationSchedule"), "the database secret must rotate"


def test_cache_encrypted_authenticated_failover_and_no_eviction(template_json: dict[str, Json]) -> None:
    data = template_json["Data"]
    (group,) = resources(data, "AWS::ElastiCache::ReplicationGroup").values()
    props = group["Properties"]
    assert props["AtRestEncryptionEnabled"] is True
    assert props["TransitEncryptionEnabled"] is True
    assert "{{resolve:secretsmanager:" in json.dumps(props["AuthToken"])
    (params,) = resources(data, "AWS::ElastiCache::ParameterGroup").values()
    # Registry, subscriptions, presence and limits carry TTLs: any LRU policy could evict them.
    assert params["Properties"]["Properties"]["maxmemory-policy"] == "noeviction"


def test_nothing_in_the_data_stack_is_open_to_an_address_range(template_json: dict[str, Json]) -> None:
    data = template_json["Data"]
    for key, sg in resources(data, "AWS::EC2::SecurityGroup").items():
        for rule in sg["Properties"].get("SecurityGroupIngress", []):
            assert "CidrIp" not in rule, key
            assert "CidrIpv6" not in rule, key
    for key, rule in resources(data, "AWS::EC2::SecurityGroupIngress").items():
        assert "SourceSecurityGroupId" in rule["Properties"], key


def test_queues_and_topics_encrypted_and_tls_enforced(template_json: dict[str, Json]) -> None:
    for name, template in template_json.items():
        for key, queue in resources(template, "AWS::SQS::Queue").items():
            props = queue["Properties"]
            assert props.get("SqsManagedSseEnabled") or props.get("KmsMasterKeyId"), f"{name}/{key}"
        for key, topic in resources(template, "AWS::SNS::Topic").items():
            assert "KmsMasterKeyId" in topic["Properties"], f"{name}/{key}"
        queue_policies = json.dumps(resources(template, "AWS::SQS::QueuePolicy"))
        if resources(template, "AWS::SQS::Queue"):
            assert '"aws:SecureTransport": "false"' in queue_policies, name


# --- asynchronous delivery: retries and DLQs -------------------------------------------------------
def test_every_event_target_has_retry_policy_and_dlq(template_json: dict[str, Json]) -> None:
    events = template_json["Events"]
    rules = resources(events, "AWS::Events::Rule")
    assert len(rules) == len(catalog.EVENT_RULES) + len(catalog.SCHEDULES)
    targets = [t for rule in rules.values() for t in rule["Properties"]["Targets"]]
    assert len(targets) == sum(len(r.targets) for r in catalog.EVENT_RULES) + len(catalog.SCHEDULES)
    for target in targets:
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
        assert "MaximumEventAgeInSeconds" in target["RetryPolicy"]
        assert "Arn" in target["DeadLetterConfig"]


def test_async_functions_have_on_failure_destinations(template_json: dict[str, Json]) -> None:
    configs = resources(template_json["Functions"], "AWS::Lambda::EventInvokeConfig")
    targeted = {t for r in catalog.EVENT_RULES for t in r.targets} | {s.function for s in catalog.SCHEDULES}
    assert len(configs) == len(targeted)
    for config in configs.values():
        assert "OnFailure" in config["Properties"]["DestinationConfig"]


def test_queue_triggers_have_redrive_and_partial_batch_failures(template_json: dict[str, Json]) -> None:
    functions = template_json["Functions"]
    mappings = resources(functions, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == len(catalog.QUEUES)
    for mapping in mappings.values():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    for trigger in catalog.QUEUES:
        queue = next(
            v
            for k, v in resources(functions, "AWS::SQS::Queue").items()
            if k.startswith(f"{pascal(trigger.name)}Queue")
        )
        assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == trigger.max_receive_count


# --- APIs -------------------------------------------------------------------------------------------
def test_routes_and_authorizers_come_from_the_catalog(template_json: dict[str, Json]) -> None:
    routes = resources(template_json["ApiRoutes"], "AWS::ApiGatewayV2::Route")
    keys = sorted(r["Properties"]["RouteKey"] for r in routes.values())
    expected = sorted([r.route_key for r in catalog.WS_ROUTES] + [r.route_key for r in catalog.HTTP_ROUTES])
    assert keys == expected
    responses = resources(template_json["ApiRoutes"], "AWS::ApiGatewayV2::RouteResponse")
    assert len(responses) == sum(r.route_response for r in catalog.WS_ROUTES)
    authorizers = resources(template_json["ApiRoutes"], "AWS::ApiGatewayV2::Authorizer")
    by_name = {a["Properties"]["Name"]: a["Properties"] for a in authorizers.values()}
    http = by_name["http-jwt"]
    assert http["AuthorizerPayloadFormatVersion"] == "2.0"
    assert http["EnableSimpleResponses"] is True
    assert by_name["ws-jwt"]["IdentitySource"] == ["route.request.querystring.token"]


def test_stages_throttled_and_access_logged(template_json: dict[str, Json]) -> None:
    stages = resources(template_json["Api"], "AWS::ApiGatewayV2::Stage")
    assert len(stages) == 2
    for stage in stages.values():
        props = stage["Properties"]
        assert "DestinationArn" in props["AccessLogSettings"]
        assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0


# SLOs, alarms and their routing: tests/infra/test_observability.py


def test_every_environment_variable_a_function_gets_is_read_by_someone(
    template_json: dict[str, Json],
) -> None:
    # One truth: a variable the stack sets but no settings field reads is dead configuration that
    # drifts (JWT_KEY_ID once carried a key id nothing used, and it differed from the real kid).
    from dataclasses import fields

    from chatflow.settings import Settings

    read = {f.name.upper() for f in fields(Settings)}
    for key, fn in resources(template_json["Functions"], "AWS::Lambda::Function").items():
        env = fn["Properties"].get("Environment", {}).get("Variables", {})
        # POWERTOOLS_*, AWS_* and catalog.RUNTIME_ENVIRONMENT are read by the libraries themselves.
        library = set(catalog.RUNTIME_ENVIRONMENT)
        unread = {v for v in env if v not in read | library and not v.startswith(("POWERTOOLS_", "AWS_"))}
        assert not unread, f"{key}: {sorted(unread)}"
