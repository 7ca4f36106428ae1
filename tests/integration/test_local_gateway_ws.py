"""The local WebSocket API against tiny test functions (tests/support/gateway_functions): handshake,
authorizer, routing, route responses, event shapes, limits, @connections over live sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from botocore.config import Config
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from local_stack.gateway import GatewayConfig, RunningGateway, running_gateway
from local_stack.websocket_api import WsLimits
from tests.support.gateway_catalog import build_test_catalog
from tests.support.gateway_log import EventLog


@pytest.fixture(scope="module")
def events() -> EventLog:
    return EventLog()


@pytest.fixture(scope="module")
def gateway(events: EventLog) -> Iterator[RunningGateway]:
    config = GatewayConfig(
        env={"JWT_PRIVATE_KEY": "test-only-not-a-key", "PATH": "/usr/bin:/bin"},
        catalog=build_test_catalog(),
        with_eventbridge=False,
        on_event=events,
    )
    with running_gateway(config) as running:
        yield running


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _open(gw: RunningGateway, query: str = "token=allow-alice", **kwargs: Any) -> ClientConnection:
    return await connect(f"{gw.ws_url}?{query}", **kwargs)


async def _ask(ws: ClientConnection, payload: Any) -> Any:
    await ws.send(payload if isinstance(payload, str | bytes) else json.dumps(payload))
    return json.loads(await asyncio.wait_for(ws.recv(), 15))


async def _connection_id(ws: ClientConnection) -> str:
    answer = await _ask(ws, {"action": "echo"})
    return str(answer["connectionId"])


def test_connect_through_the_authorizer_and_echo_with_its_context(gateway: RunningGateway) -> None:
    async def scenario() -> Any:
        async with await _open(gateway) as ws:
            return await _ask(ws, {"action": "echo", "n": 1})

    answer = run(scenario())
    assert answer["body"] == {"action": "echo", "n": 1}
    assert answer["authorizer"]["principalId"] == "alice"
    assert answer["authorizer"]["userId"] == "alice"
    assert answer["authorizer"]["fromAuthorizer"] is True


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 401),  # identity source missing: API Gateway refuses without calling the authorizer
        ("token=", 401),
        ("token=unauth", 401),
        ("token=deny", 403),
        ("token=boom", 500),
        ("token=nested", 500),  # context values must be flat
        ("token=allow-bob&reject=403", 403),  # $connect integration answered non-2xx
        ("token=allow-bob&crash=1", 500),
    ],
)
def test_handshake_refusals_match_api_gateway(gateway: RunningGateway, query: str, status: int) -> None:
    async def scenario() -> None:
        with pytest.raises(InvalidStatus) as caught:
            await _open(gateway, query)
        assert caught.value.response.status_code == status
        assert "message" in json.loads(caught.value.response.body)

    run(scenario())


def test_wrong_stage_path_is_refused(gateway: RunningGateway) -> None:
    async def scenario() -> None:
        url = gateway.ws_url.rsplit("/", 1)[0] + "/otherstage?token=allow-x"
        with pytest.raises(InvalidStatus) as caught:
            await connect(url)
        assert caught.value.response.status_code == 403

    run(scenario())


def test_websocket_authorizer_runs_on_every_connect_never_cached(gateway: RunningGateway) -> None:
    """The catalog's ws-auth says cache_ttl_s=300, but API Gateway caches HTTP API authorizers only."""
    ws_api = gateway.gateway.ws
    assert ws_api is not None
    assert ws_api.connect_authorizer is not None
    before = ws_api.connect_authorizer.invocations

    async def scenario() -> None:
        for _ in range(3):
            async with await _open(gateway, "token=allow-cached-user") as ws:
                await _connection_id(ws)

    run(scenario())
    assert ws_api.connect_authorizer.invocations == before + 3


def test_route_selection_default_and_binary(gateway: RunningGateway) -> None:
    async def scenario() -> list[Any]:
        async with await _open(gateway) as ws:
            return [
                await _ask(ws, {"action": "nope"}),
                await _ask(ws, "not json at all"),
                await _ask(ws, {"no": "action"}),
                await _ask(ws, b"\x00\x01"),
                await _ask(ws, {"action": "$connect"}),  # reserved keys are never selected by body
                await _ask(ws, "[" * 20_000),  # nested past json's recursion limit: still no JSON route
            ]

    answers = run(scenario())
    assert all(a["code"] == "unknown_action" for a in answers)
    assert [a["binary"] for a in answers] == [False, False, False, True, False, False]


def test_route_without_route_response_sends_nothing_back(gateway: RunningGateway) -> None:
    async def scenario() -> Any:
        async with await _open(gateway) as ws:
            await ws.send(json.dumps({"action": "silent"}))
            return await _ask(ws, {"action": "echo", "after": "silent"})

    assert run(scenario())["body"] == {"action": "echo", "after": "silent"}


def test_handler_error_becomes_api_gateways_error_frame_and_connection_stays(gateway: RunningGateway) -> None:
    async def scenario() -> tuple[Any, Any]:
        async with await _open(gateway) as ws:
            failed = await _ask(ws, {"action": "boom"})
            still_open = await _ask(ws, {"action": "echo"})
            return failed, still_open

    failed, still_open = run(scenario())
    assert failed["message"] == "Internal server error"
    assert failed["connectionId"]
    assert failed["requestId"]
    assert still_open["body"] == {"action": "echo"}


def test_events_parse_with_powertools_models(gateway: RunningGateway, events: EventLog) -> None:
    async def scenario() -> str:
        async with await _open(gateway, "token=allow-carol&x=1&x=2", user_agent_header="shape-test") as ws:
            cid = await _connection_id(ws)
            await ws.close(4000, "client says bye")
            return cid

    cid = run(scenario())
    connect_event = events.of_connection("$connect", cid)
    message_event = events.of_connection("echo", cid)
    disconnect_event = events.of_connection("$disconnect", cid)
    parsed_connect = APIGatewayWebSocketConnectEventModel.model_validate(connect_event)
    parsed_message = APIGatewayWebSocketMessageEventModel.model_validate(message_event)
    parsed_disconnect = APIGatewayWebSocketDisconnectEventModel.model_validate(disconnect_event)
    assert parsed_connect.request_context.connection_id == cid
    assert parsed_connect.request_context.identity.user_agent == "shape-test"
    assert connect_event["queryStringParameters"]["x"] == "2"
    assert connect_event["multiValueQueryStringParameters"]["x"] == ["1", "2"]
    assert connect_event["requestContext"]["authorizer"]["userId"] == "carol"
    assert parsed_message.request_context.route_key == "echo"
    assert parsed_message.request_context.message_id
    assert message_event["requestContext"]["authorizer"]["principalId"] == "carol"
    assert parsed_disconnect.request_context.disconnect_status_code == 4000
    assert parsed_disconnect.request_context.disconnect_reason == "client says bye"


def test_vanished_client_disconnects_with_1006(gateway: RunningGateway, events: EventLog) -> None:
    async def scenario() -> str:
        ws = await _open(gateway)
        cid = await _connection_id(ws)
        ws.transport.abort()  # no close frame, like a phone losing its network
        return cid

    cid = run(scenario())
    assert events.of_connection("$disconnect", cid)["requestContext"]["disconnectStatusCode"] == 1006


def test_subprotocol_only_when_connect_returns_it(gateway: RunningGateway) -> None:
    async def scenario() -> tuple[str | None, str | None]:
        async with await _open(gateway, "token=allow-p&protocol=chat.v1", subprotocols=["chat.v1"]) as chosen:
            picked = chosen.subprotocol
        async with await _open(gateway, "token=allow-p", subprotocols=["chat.v1"]) as unchosen:
            not_picked = unchosen.subprotocol
        return picked, not_picked

    assert run(scenario()) == ("chat.v1", None)


def test_frames_over_32_kb_and_messages_over_128_kb_close_1009(gateway: RunningGateway) -> None:
    async def scenario() -> tuple[int | None, int | None, Any]:
        async with await _open(gateway, max_size=None) as ws:
            await ws.send("x" * (32 * 1024 + 1))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            frame_code = ws.close_code
        async with await _open(gateway, max_size=None) as ws:
            # 160 KB in 16 KB fragments: every frame is fine, the message is too big.
            chunks = ["y" * (16 * 1024)] * 10
            await ws.send(iter(chunks))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            message_code = ws.close_code
        async with await _open(gateway) as ws:
            # A 100 KB message in 20 KB fragments is within both limits.
            body = json.dumps({"action": "echo", "pad": "z" * 100_000})
            fragments = [body[i : i + 20_000] for i in range(0, len(body), 20_000)]
            await ws.send(iter(fragments))
            ok = json.loads(await asyncio.wait_for(ws.recv(), 15))
        return frame_code, message_code, ok

    frame_code, message_code, ok = run(scenario())
    assert frame_code == 1009
    assert message_code == 1009
    assert len(ok["body"]["pad"]) == 100_000


def test_idle_and_lifetime_limits_close_with_1001() -> None:
    log = EventLog()
    config = GatewayConfig(
        env={"PATH": "/usr/bin:/bin"},
        catalog=build_test_catalog(),
        limits=WsLimits(idle_timeout_s=1.0, max_lifetime_s=2.5),
        with_eventbridge=False,
        on_event=log,
    )

    async def idle(gw: RunningGateway) -> tuple[str, int | None]:
        async with await _open(gw) as ws:
            cid = await _connection_id(ws)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 15)  # nothing sent: the 1 s idle limit closes it
            return cid, ws.close_code

    async def busy(gw: RunningGateway) -> tuple[str, int | None, int]:
        async with await _open(gw) as ws:
            cid = await _connection_id(ws)
            answers = 0
            closed = False
            for _ in range(200):  # keeps talking, so only the lifetime limit can close it
                try:
                    await _ask(ws, {"action": "echo"})
                except ConnectionClosed:
                    closed = True
                    break
                answers += 1
                await asyncio.sleep(0.2)
            assert closed
            return cid, ws.close_code, answers

    with running_gateway(config) as gw:
        cid, code = run(idle(gw))
        assert code == 1001
        assert log.of_connection("$disconnect", cid)["requestContext"]["disconnectStatusCode"] == 1001
        cid, code, answers = run(busy(gw))
        assert code == 1001
        assert answers > 3  # it outlived several idle periods before the lifetime ended it
        assert log.of_connection("$disconnect", cid)["requestContext"]["disconnectReason"] == "Going away"


def test_handshake_timeout_covers_api_gateways_integration_timeouts_and_is_enforced() -> None:
    # API Gateway waits up to 29 s for the $connect authorizer and again for $connect itself;
    # websockets' default handshake timeout (10 s) failed slower (cold, locally) connects. When
    # the limit does strike, the abandoned invocation must not leak its worker.
    assert WsLimits().handshake_timeout_s >= 2 * 29
    log = EventLog()
    config = GatewayConfig(
        env={"PATH": "/usr/bin:/bin"},
        catalog=build_test_catalog(),
        limits=WsLimits(handshake_timeout_s=0.5),
        with_eventbridge=False,
        on_event=log,
    )
    token = f"allow-late-{os.urandom(4).hex()}"

    async def too_slow(gw: RunningGateway) -> None:
        with pytest.raises(InvalidHandshake):  # the server drops the unfinished handshake
            async with await _open(gw, f"token={token}&sleep=1.5", open_timeout=20):
                pass

    with running_gateway(config) as gw:
        # Warm workers first: under load a cold worker alone can take longer than the 0.5 s
        # limit, and the handshake would be dropped before $connect is ever invoked.
        assert gw.gateway.runtime is not None
        gw.run(gw.gateway.runtime.warm(["authz", "connect"]))
        run(too_slow(gw))
        _connect_event_with_token(log, token)
        ws_api, runtime = gw.gateway.ws, gw.gateway.runtime
        assert ws_api is not None
        assert runtime is not None
        assert ws_api._pending == {}
        # The abandoned $connect invocation's worker is reset, not leaked beside the pool.
        pool = runtime.pool("connect")
        assert set(pool._all) == set(pool._idle)


def _mgmt(gateway: RunningGateway) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=gateway.management_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",  # the gateway's key pair (GatewayConfig.key_pair)
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


def test_management_api_over_live_sockets(gateway: RunningGateway) -> None:
    client = _mgmt(gateway)

    async def scenario() -> tuple[Any, Any, bool]:
        async with await _open(gateway, user_agent_header="live-agent") as ws:
            cid = await _connection_id(ws)
            info = await asyncio.to_thread(client.get_connection, ConnectionId=cid)
            await asyncio.to_thread(client.post_to_connection, ConnectionId=cid, Data=b'{"pushed":true}')
            pushed = json.loads(await asyncio.wait_for(ws.recv(), 10))
            await asyncio.to_thread(client.delete_connection, ConnectionId=cid)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            try:
                await asyncio.to_thread(client.post_to_connection, ConnectionId=cid, Data=b"late")
            except client.exceptions.GoneException:
                gone = True
            else:
                gone = False
            return info, pushed, gone

    info, pushed, gone = run(scenario())
    assert info["Identity"]["UserAgent"] == "live-agent"
    assert info["Identity"]["SourceIp"] == "127.0.0.1"
    assert pushed == {"pushed": True}
    assert gone


def test_handler_posts_to_another_connection_and_gets_410_after_it_vanished(gateway: RunningGateway) -> None:
    async def scenario() -> tuple[Any, Any]:
        async with (
            await _open(gateway, "token=allow-a") as sender,
            await _open(gateway, "token=allow-b") as receiver,
        ):
            target = await _connection_id(receiver)
            await sender.send(json.dumps({"action": "notify", "to": target, "data": {"hi": "b"}}))
            delivered = json.loads(await asyncio.wait_for(receiver.recv(), 15))
            await receiver.close()
            await sender.send(json.dumps({"action": "notify", "to": target, "data": {"hi": "again"}}))
            error = json.loads(await asyncio.wait_for(sender.recv(), 15))  # GoneException raised in handler
            return delivered, error

    delivered, error = run(scenario())
    assert delivered == {"hi": "b"}
    assert error["message"] == "Internal server error"


def _connect_event_with_token(events: EventLog, token: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for key, event in list(events.events):
            if key == "$connect" and (event.get("queryStringParameters") or {}).get("token") == token:
                return event
        time.sleep(0.05)
    raise AssertionError(f"no $connect with token {token}")


def test_client_gone_mid_handshake_still_gets_disconnect_and_leaves_nothing_behind(
    gateway: RunningGateway, events: EventLog
) -> None:
    # $connect succeeded (the function registered the connection), but the client had already
    # hung up: the connection must not linger in the gateway, and $disconnect must follow so the
    # function can unregister it (else it counts against the user's connection limit until TTL).
    url = urlsplit(gateway.ws_url)
    assert url.hostname is not None
    assert url.port is not None
    token = f"allow-mid-{os.urandom(4).hex()}"
    with socket.create_connection((url.hostname, url.port)) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {url.path}?token={token}&sleep=0.5 HTTP/1.1\r\nHost: {url.netloc}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        cid = _connect_event_with_token(events, token)["requestContext"]["connectionId"]
        # Hang up (RST) while $connect still runs.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert events.of_connection("$disconnect", cid)["requestContext"]["disconnectStatusCode"] == 1006
    ws_api = gateway.gateway.ws
    assert ws_api is not None
    assert cid not in ws_api.live
    assert ws_api._pending == {}
