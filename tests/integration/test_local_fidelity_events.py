"""Fidelity: the events the local API Gateway hands to functions, field by field against AWS's
sample events -- the ones Powertools for AWS Lambda (Python) ships in its repository under
``tests/events/`` (aws-powertools/powertools-lambda-python):

* ``apiGatewayWebSocketApiConnect.json`` -- $connect: headers Host, Sec-WebSocket-*, X-Amzn-Trace-Id,
  X-Forwarded-For/-Port/-Proto (no Connection, no Upgrade); requestContext keys; ``requestId`` ==
  ``extendedRequestId`` ("BFHPhFe3IAMF95g="); ``identity`` {sourceIp};
* ``apiGatewayAuthorizerWebSocketEvent.json`` -- the REQUEST authorizer: type, methodArn, headers
  WITH Connection/Upgrade/content-length "0" plus the X-* ones, empty query maps and
  stageVariables present, the $connect request's requestId;
* ``apiGatewayWebSocketApiMessage.json`` / ``apiGatewayWebSocketApiDisconnect.json`` -- messageId,
  the $disconnect header set {Host, x-api-key, X-Forwarded-For, x-restapi};
* ``apiGatewayProxyV2Event.json`` / ``apiGatewayAuthorizerV2Event.json`` -- payload 2.0 keys,
  lower-case headers with x-amzn-trace-id / x-forwarded-*, requestContext keys;
* WebSocket ``requestContext.authorizer`` = principalId + integrationLatency + context (REST-style,
  as the Lambda authorizer output is passed: "Output from an API Gateway Lambda authorizer",
  API Gateway developer guide).
Values that are local by nature (ids, times, the port, ``http`` instead of ``https``) are checked
for their format, not their value.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from websockets.asyncio.client import connect

from tests.support.fidelity import Fidelity, eventually, fidelity_gateway

AWS_ID = re.compile(r"^[A-Za-z0-9+/_-]{15}=$")  # "BFHPhFe3IAMF95g=", "BFHPhfCWIAMCKlQ="
TRACE = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$")  # "Root=1-6731ebfc-08e1e656421db73c5d2eef31"
REQUEST_TIME = re.compile(
    r"^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000$"
)  # "11/Nov/2024:11:35:24 +0000"
#: requestContext keys of apiGatewayWebSocketApiConnect.json.
WS_CONTEXT = {
    "routeKey",
    "eventType",
    "extendedRequestId",
    "requestTime",
    "messageDirection",
    "stage",
    "connectedAt",
    "requestTimeEpoch",
    "identity",
    "requestId",
    "domainName",
    "connectionId",
    "apiId",
}
ADDED = {"X-Amzn-Trace-Id", "X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"}


@pytest.fixture(scope="module")
def fid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fidelity]:
    with fidelity_gateway(tmp_path_factory.mktemp("events")) as running:
        yield running


@pytest.fixture(scope="module")
def ws_session(fid: Fidelity) -> dict[str, Any]:
    """One WebSocket session: connect (through the authorizer), one message, close."""

    async def session() -> tuple[str, dict[str, str]]:
        async with connect(
            f"{fid.gateway.ws_url}?token=allow-ada&x=1", user_agent_header="fidelity/1.0"
        ) as ws:
            await ws.send(json.dumps({"action": "echo", "n": 1}))
            answer = json.loads(await asyncio.wait_for(ws.recv(), 15))
            sent = dict(ws.request.headers.raw_items()) if ws.request is not None else {}
            return str(answer["connectionId"]), sent

    cid, sent = asyncio.run(session())
    events = fid.events

    def of(route: str) -> dict[str, Any]:
        return events.wait_for(lambda k, e: k == route and e["requestContext"].get("connectionId") == cid)

    authorizer = eventually(
        lambda: next(
            (
                line["payload"]
                for line in fid.invocations("authz")
                if line["payload"].get("requestContext", {}).get("connectionId") == cid
            ),
            None,
        )
    )
    return {
        "cid": cid,
        "sent": sent,
        "connect": of("$connect"),
        "message": of("echo"),
        "disconnect": of("$disconnect"),
        "authorizer": authorizer,
        "port": fid.gateway.gateway.ws.port if fid.gateway.gateway.ws else 0,
    }


def _check_ws_context(context: dict[str, Any], event_type: str, route: str) -> None:
    assert context["eventType"] == event_type
    assert context["routeKey"] == route
    assert context["messageDirection"] == "IN"
    assert AWS_ID.match(context["requestId"])
    assert context["requestId"] == context["extendedRequestId"]  # equal in every AWS sample
    assert AWS_ID.match(context["connectionId"])
    assert REQUEST_TIME.match(context["requestTime"])
    assert isinstance(context["requestTimeEpoch"], int)
    assert context["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "fidelity/1.0"}


def test_connect_event_matches_aws_sample(ws_session: dict[str, Any]) -> None:
    event = ws_session["connect"]
    assert set(event) == {
        "headers",
        "multiValueHeaders",
        "requestContext",
        "isBase64Encoded",
        "queryStringParameters",  # the sample's client sent no query string; ours did
        "multiValueQueryStringParameters",
    }
    assert {"Host", "Upgrade", "Connection", "Sec-WebSocket-Key"} <= set(ws_session["sent"])
    sent = {k for k in ws_session["sent"] if k.lower() not in ("connection", "upgrade")}
    assert set(event["headers"]) == sent | ADDED
    assert "Connection" not in event["headers"]
    assert "Upgrade" not in event["headers"]
    assert TRACE.match(event["headers"]["X-Amzn-Trace-Id"])
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["headers"]["X-Forwarded-Port"] == str(ws_session["port"])
    assert event["headers"]["X-Forwarded-Proto"] == "http"  # AWS: https (wss); locally ws
    assert event["multiValueHeaders"] == {k: [v] for k, v in event["headers"].items()}
    context = event["requestContext"]
    assert set(context) == WS_CONTEXT | {"authorizer"}
    _check_ws_context(context, "CONNECT", "$connect")
    APIGatewayWebSocketConnectEventModel.model_validate(event)


def test_websocket_authorizer_context_has_principal_and_integration_latency(
    ws_session: dict[str, Any],
) -> None:
    for name in ("connect", "message", "disconnect"):
        authorizer = ws_session[name]["requestContext"]["authorizer"]
        assert set(authorizer) == {"principalId", "integrationLatency", "userId", "fromAuthorizer"}
        assert authorizer["principalId"] == "ada"
        assert isinstance(authorizer["integrationLatency"], int)
        assert authorizer["integrationLatency"] >= 0


def test_websocket_authorizer_event_matches_aws_sample(ws_session: dict[str, Any]) -> None:
    event = ws_session["authorizer"]
    assert set(event) == {
        "type",
        "methodArn",
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "stageVariables",
        "requestContext",
    }
    assert event["type"] == "REQUEST"
    assert re.match(
        r"^arn:aws:execute-api:us-east-1:000000000000:[a-z0-9]{10}/local/\$connect$", event["methodArn"]
    )
    headers = event["headers"]
    # The authorizer sees the hop-by-hop headers the $connect integration does not.
    assert headers["Connection"].lower() == "upgrade"
    assert headers["Upgrade"].lower() == "websocket"
    assert headers["content-length"] == "0"
    assert set(headers) >= ADDED
    assert event["queryStringParameters"] == {"token": "allow-ada", "x": "1"}
    assert event["stageVariables"] == {}
    context = event["requestContext"]
    assert set(context) == WS_CONTEXT  # no authorizer yet
    _check_ws_context(context, "CONNECT", "$connect")
    connect = ws_session["connect"]
    # One request: the authorizer and the $connect integration share its ids and its trace.
    assert context["requestId"] == connect["requestContext"]["requestId"]
    assert headers["X-Amzn-Trace-Id"] == connect["headers"]["X-Amzn-Trace-Id"]


def test_message_event_matches_aws_sample(ws_session: dict[str, Any]) -> None:
    event = ws_session["message"]
    assert set(event) == {"requestContext", "body", "isBase64Encoded"}
    context = event["requestContext"]
    assert set(context) == WS_CONTEXT | {"messageId", "authorizer"}
    _check_ws_context(context, "MESSAGE", "echo")
    assert AWS_ID.match(context["messageId"])
    assert context["messageId"] != context["requestId"]
    assert context["requestId"] != ws_session["connect"]["requestContext"]["requestId"]  # a new request
    APIGatewayWebSocketMessageEventModel.model_validate(event)


def test_disconnect_event_matches_aws_sample(ws_session: dict[str, Any]) -> None:
    event = ws_session["disconnect"]
    assert set(event) == {"headers", "multiValueHeaders", "requestContext", "isBase64Encoded"}
    assert set(event["headers"]) == {"Host", "x-api-key", "X-Forwarded-For", "x-restapi"}
    context = event["requestContext"]
    assert set(context) == WS_CONTEXT | {"disconnectStatusCode", "disconnectReason", "authorizer"}
    _check_ws_context(context, "DISCONNECT", "$disconnect")
    APIGatewayWebSocketDisconnectEventModel.model_validate(event)


def _http_get(fid: Fidelity, path: str, headers: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(fid.gateway.http_url + path, headers=headers)
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 200
    return fid.events.wait_for(lambda k, e: k == "GET /items/{item_id}" and e["rawPath"] == path)


def test_http_api_event_matches_aws_sample(fid: Fidelity) -> None:
    event = _http_get(
        fid,
        "/items/i-1",
        {
            "Authorization": "Bearer allow-bob",
            "X-Forwarded-For": "203.0.113.7",  # a proxy in front: API Gateway appends the source
            "User-Agent": "fidelity/1.0",
            "Connection": "close",
        },
    )
    assert set(event) == {
        "version",
        "routeKey",
        "rawPath",
        "rawQueryString",
        "headers",
        "requestContext",
        "isBase64Encoded",
        "pathParameters",
    }
    headers = event["headers"]
    assert all(name == name.lower() for name in headers)
    assert "connection" not in headers
    assert TRACE.match(headers["x-amzn-trace-id"])
    assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert headers["x-forwarded-port"] == fid.gateway.http_url.rsplit(":", 1)[1]
    assert headers["x-forwarded-proto"] == "http"
    context = event["requestContext"]
    assert set(context) == {
        "accountId",
        "apiId",
        "authorizer",
        "domainName",
        "domainPrefix",
        "http",
        "requestId",
        "routeKey",
        "stage",
        "time",
        "timeEpoch",
    }
    assert AWS_ID.match(context["requestId"])
    assert REQUEST_TIME.match(context["time"])
    assert set(context["http"]) == {"method", "path", "protocol", "sourceIp", "userAgent"}
    assert context["http"]["userAgent"] == "fidelity/1.0"
    assert set(context["authorizer"]) == {"lambda"}  # payload 2.0: no principalId/integrationLatency
    APIGatewayProxyEventV2Model.model_validate(event)

    # The authorizer's event for the same request (apiGatewayAuthorizerV2Event.json).
    authorizer = eventually(
        lambda: next(
            (
                line["payload"]
                for line in fid.invocations("authz")
                if line["payload"].get("requestContext", {}).get("requestId") == context["requestId"]
            ),
            None,
        )
    )
    assert {"version", "type", "routeArn", "identitySource", "routeKey", "rawPath", "headers"} <= set(
        authorizer
    )
    assert authorizer["headers"]["x-amzn-trace-id"] == headers["x-amzn-trace-id"]
    assert authorizer["identitySource"] == ["Bearer allow-bob"]


def test_a_clients_trace_header_with_a_root_is_kept(fid: Fidelity) -> None:
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    event = _http_get(fid, "/items/i-2", {"Authorization": "Bearer allow-bob", "X-Amzn-Trace-Id": trace})
    assert event["headers"]["x-amzn-trace-id"] == trace
