"""Pure rules of the local gateway: IAM policy evaluation, identity sources, route selection, HTTP
route matching, event shapes."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)

from infra.catalog import HttpRoute
from local_stack import apigw_events as ev
from local_stack.authorizers import identity_values, policy_allows
from local_stack.http_api import compile_route
from local_stack.websocket_api import select_route

ARN = "arn:aws:execute-api:us-east-1:000000000000:abc/local/$connect"


def _policy(*statements: dict[str, object]) -> dict[str, object]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.mark.parametrize(
    ("policy", "allowed"),
    [
        (_policy({"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": ARN}), True),
        (
            _policy({"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:*"}),
            True,
        ),
        (_policy({"Effect": "Allow", "Action": ["execute-api:*"], "Resource": ["*"]}), True),
        (
            _policy(
                {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": ARN.replace("$connect", "x")}
            ),
            False,
        ),
        (_policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}), False),
        (
            _policy(
                {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"},
                {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": ARN},
            ),
            False,  # an explicit Deny wins
        ),
        (_policy(), False),  # no Allow
        ("not a policy", False),
        ({"Statement": {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": ARN}}, True),
    ],
)
def test_policy_evaluation(policy: object, allowed: bool) -> None:
    assert policy_allows(policy, ARN) is allowed


def test_identity_sources_need_every_value_present_and_non_empty() -> None:
    sources = ("route.request.querystring.token", "route.request.header.X-Device")
    assert identity_values(sources, {"x-device": "phone"}, {"token": "t"}) == ["t", "phone"]
    assert identity_values(sources, {"x-device": "phone"}, {}) is None
    assert identity_values(sources, {"x-device": ""}, {"token": "t"}) is None
    assert identity_values(("$request.header.Authorization",), {"AUTHORIZATION": "Bearer x"}, {}) == [
        "Bearer x"
    ]
    with pytest.raises(ValueError):
        identity_values(("context.identity.sourceIp",), {}, {})


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ('{"action": "send"}', "send"),
        ('{"action": "nope"}', "$default"),
        ('{"action": 3}', "$default"),
        ('{"action": "$disconnect"}', "$default"),
        ("[1, 2]", "$default"),
        ("", "$default"),
        (b'{"action": "send"}', "$default"),  # binary frames are never parsed
    ],
)
def test_route_selection(body: str | bytes, route: str) -> None:
    assert select_route(body, "$request.body.action", {"send", "$default", "$disconnect"}) == route


def test_route_selection_with_a_nested_expression() -> None:
    assert select_route('{"meta": {"op": "send"}}', "$request.body.meta.op", {"send"}) == "send"
    assert select_route('{"meta": "send"}', "$request.body.meta.op", {"send"}) == "$default"


def test_http_route_patterns() -> None:
    param = compile_route(HttpRoute("GET", "/rooms/{room_id}/messages/{seq}", "f"))
    match = param.pattern.match("/rooms/r1/messages/42")
    assert match is not None
    assert match.groupdict() == {"room_id": "r1", "seq": "42"}
    assert param.pattern.match("/rooms/r1/messages/42/extra") is None
    greedy = compile_route(HttpRoute("GET", "/files/{proxy+}", "f"))
    greedy_match = greedy.pattern.match("/files/a/b")
    assert greedy_match is not None
    assert greedy_match.group("proxy") == "a/b"
    literal = compile_route(HttpRoute("GET", "/rooms/special", "f"))
    assert sorted([greedy, param, literal], key=lambda c: c.specificity)[0] is literal


def test_event_builders_parse_with_powertools_models() -> None:
    api = ev.WsApi("abcdefghij", "local", "127.0.0.1:8001")
    conn = ev.WsConnectionFacts(
        "Abc123=",
        ev.now_ms(),
        "10.0.0.1",
        "agent",
        headers=[("Host", "x"), ("X-Multi", "1"), ("X-Multi", "2")],
        query=[("token", "t")],
        authorizer={"principalId": "u1", "userId": "u1"},
    )
    connect = ev.ws_connect_event(api, conn)
    APIGatewayWebSocketConnectEventModel.model_validate(connect)
    assert connect["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert connect["headers"]["X-Multi"] == "2"
    message = ev.ws_message_event(api, conn, "send", '{"action":"send"}')
    assert APIGatewayWebSocketMessageEventModel.model_validate(message).request_context.route_key == "send"
    disconnect = ev.ws_disconnect_event(api, conn, 1001, "Going away")
    APIGatewayWebSocketDisconnectEventModel.model_validate(disconnect)
    authorizer = ev.ws_authorizer_event(api, conn)
    assert authorizer["methodArn"].endswith("/local/$connect")
    assert "authorizer" not in authorizer["requestContext"]

    http = ev.http_event_v2(
        ev.HttpApi("http123456", "127.0.0.1:8000"),
        ev.HttpRequestFacts(
            "POST",
            "/rooms/r1",
            "a=1&a=2",
            [("Content-Type", "application/json"), ("X-A", "1"), ("x-a", "2")],
            b'{"x": 1}',
            "127.0.0.1",
        ),
        "POST /rooms/{room_id}",
        {"room_id": "r1"},
        {"userId": "u1"},
    )
    parsed = APIGatewayProxyEventV2Model.model_validate(http)
    assert parsed.headers["x-a"] == "1,2"
    assert parsed.queryStringParameters == {"a": "1,2"}
    assert parsed.body == '{"x": 1}'
    assert parsed.isBase64Encoded is False


def test_http_authorizer_cache_drops_expired_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every distinct token adds a cache entry; a long `make dev` session (or a load benchmark)
    # must not keep every answer of the last hours in memory.
    import asyncio
    import time

    from infra.catalog import Authorizer
    from local_stack import authorizers

    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])  # nothing here sleeps on the loop

    async def allow(function: str, event: dict[str, object]) -> object:
        return {"isAuthorized": True, "context": {}}

    runner = authorizers.AuthorizerRunner(
        Authorizer("a", "authz", ("$request.header.Authorization",), cache_ttl_s=300), allow, kind="http"
    )

    async def decide_many(prefix: str, count: int) -> None:
        for i in range(count):
            assert (await runner.decide([f"{prefix}{i}"], {}, "arn")).allowed

    asyncio.run(decide_many("old-", 2 * authorizers.MAX_CACHED_ANSWERS))
    assert len(runner._cache) <= authorizers.MAX_CACHED_ANSWERS + 1
    now[0] += 301  # every answer so far expired
    asyncio.run(decide_many("new-", authorizers.MAX_CACHED_ANSWERS + 1))
    assert all(key[0].startswith("new-") for key in runner._cache)
