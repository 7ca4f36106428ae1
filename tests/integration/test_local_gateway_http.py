"""The local HTTP API and Lambda semantics against tiny test functions (tests/support/gateway_functions)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model
from websockets.asyncio.client import connect

from local_stack.gateway import GatewayConfig, RunningGateway, running_gateway
from tests.support.gateway_catalog import build_test_catalog
from tests.support.gateway_log import eventually


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.logs: list[tuple[str, str]] = []

    def event(self, route_key: str, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((route_key, event))

    def log(self, function: str, line: str) -> None:
        with self.lock:
            self.logs.append((function, line))


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def gateway(recorder: Recorder) -> Iterator[RunningGateway]:
    config = GatewayConfig(
        env={"JWT_PRIVATE_KEY": "test-only-not-a-key", "PATH": "/usr/bin:/bin"},
        catalog=build_test_catalog(),
        with_eventbridge=False,
        on_event=recorder.event,
        log_sink=recorder.log,
    )
    with running_gateway(config) as running:
        yield running


def request(
    gateway: RunningGateway, method: str, path: str, **kwargs: Any
) -> tuple[int, dict[str, str], bytes]:
    async def go() -> tuple[int, dict[str, str], bytes]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, gateway.http_url + path, **kwargs) as response,
        ):
            return response.status, dict(response.headers), await response.read()

    result: tuple[int, dict[str, str], bytes] = asyncio.run(go())
    return result


def test_path_parameters_authorizer_context_and_a_2_0_event(
    gateway: RunningGateway, recorder: Recorder
) -> None:
    status, headers, body = request(
        gateway,
        "GET",
        "/items/42?x=1&x=2",
        headers={"Authorization": "Bearer allow-dana", "Cookie": "a=1; b=2"},
    )
    assert status == 200
    assert headers["x-test"] == "yes"
    seen = json.loads(body)
    assert seen["routeKey"] == "GET /items/{item_id}"
    assert seen["pathParameters"] == {"item_id": "42"}
    assert seen["query"] == {"x": "1,2"}
    assert seen["authorizer"] == {"userId": "dana", "fromAuthorizer": True}
    assert seen["cookies"] == ["a=1", "b=2"]
    event = next(e for k, e in reversed(recorder.events) if k == "GET /items/{item_id}")
    parsed = APIGatewayProxyEventV2Model.model_validate(event)
    assert parsed.rawPath == "/items/42"
    assert parsed.requestContext.authorizer is not None
    assert parsed.requestContext.authorizer.lambda_value == {"userId": "dana", "fromAuthorizer": True}


def test_literal_routes_beat_parameters_and_greedy_paths_match(gateway: RunningGateway) -> None:
    status, _, body = request(gateway, "GET", "/items/special")
    assert status == 200  # no authorizer on the literal route
    assert json.loads(body)["routeKey"] == "GET /items/special"
    status, _, body = request(gateway, "GET", "/files/a/b/c.txt")
    assert json.loads(body)["pathParameters"] == {"proxy": "a/b/c.txt"}


@pytest.mark.parametrize(
    ("authorization", "status", "message"),
    [
        (None, 401, "Unauthorized"),
        ("Bearer deny", 403, "Forbidden"),
        ("Bearer unauth", 401, "Unauthorized"),
        ("Bearer boom", 500, "Internal Server Error"),
    ],
)
def test_http_authorizer_outcomes(
    gateway: RunningGateway, authorization: str | None, status: int, message: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    got, _, body = request(gateway, "GET", "/items/1", headers=headers)
    assert got == status
    assert json.loads(body) == {"message": message}


def test_http_authorizer_results_are_cached_per_identity_source(gateway: RunningGateway) -> None:
    http_api = gateway.gateway.http
    assert http_api is not None
    runner = http_api.authorizers["http-auth"]
    before = runner.invocations
    for item in ("a", "b", "c"):
        status, _, _ = request(
            gateway, "GET", f"/items/{item}", headers={"Authorization": "Bearer allow-cache"}
        )
        assert status == 200
    assert runner.invocations == before + 1
    request(gateway, "GET", "/items/d", headers={"Authorization": "Bearer allow-other"})
    assert runner.invocations == before + 2


def test_policy_answers_work_for_http_authorizers_too(gateway: RunningGateway) -> None:
    status, _, body = request(gateway, "GET", "/items/7", headers={"Authorization": "Bearer policy"})
    assert status == 200
    assert json.loads(body)["authorizer"] == {"userId": "policy-user"}


def test_undeclared_routes_and_methods_are_api_gateways_404(gateway: RunningGateway) -> None:
    for method, path in (("GET", "/nowhere"), ("DELETE", "/items/1"), ("GET", "/items")):
        status, _, body = request(gateway, method, path)
        assert status == 404
        assert json.loads(body) == {"message": "Not Found"}


def test_text_bodies_stay_text_and_binary_bodies_are_base64(gateway: RunningGateway) -> None:
    status, _, body = request(gateway, "POST", "/items", json={"name": "x"})
    assert status == 201
    seen = json.loads(body)
    assert json.loads(seen["body"]) == {"name": "x"}
    assert seen["isBase64Encoded"] is False
    raw = bytes(range(256))
    _, _, body = request(
        gateway, "POST", "/items", data=raw, headers={"Content-Type": "application/octet-stream"}
    )
    seen = json.loads(body)
    assert seen["isBase64Encoded"] is True
    assert base64.b64decode(seen["body"]) == raw


def test_base64_answers_are_decoded_and_plain_results_become_json(gateway: RunningGateway) -> None:
    status, headers, body = request(gateway, "GET", "/binary")
    assert (status, body) == (200, b"\x00\x01\xff")
    assert headers["Content-Type"] == "application/octet-stream"
    status, headers, body = request(gateway, "GET", "/plain")
    assert status == 200
    assert json.loads(body) == {"hello": "world"}
    assert headers["Content-Type"] == "application/json"


def test_cors_preflight_is_answered_by_the_gateway(gateway: RunningGateway, recorder: Recorder) -> None:
    before = len(recorder.events)
    status, headers, _ = request(
        gateway,
        "OPTIONS",
        "/items/1",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == "*"
    assert "authorization" in headers["Access-Control-Allow-Headers"]
    assert len(recorder.events) == before  # no function was called
    _, headers, _ = request(gateway, "GET", "/items/special", headers={"Origin": "http://localhost:5173"})
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_a_raising_handler_is_a_logged_500(gateway: RunningGateway, recorder: Recorder) -> None:
    status, _, body = request(gateway, "GET", "/boom")
    assert status == 500
    assert json.loads(body) == {"message": "Internal Server Error"}
    with recorder.lock:
        lines = [line for fn, line in recorder.logs if fn == "http"]
    assert any("http handler failed on purpose" in line for line in lines)
    assert any("Traceback" in line for line in lines)


# --- Lambda semantics ---------------------------------------------------------------------------


def _ws_ask(gateway: RunningGateway, frames: list[dict[str, Any]]) -> list[Any]:
    async def go() -> list[Any]:
        answers = []
        async with connect(gateway.ws_url + "?token=allow-lambda") as ws:
            for frame in frames:
                await ws.send(json.dumps(frame))
                answers.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
        return answers

    result: list[Any] = asyncio.run(go())
    return result


def test_context_environment_and_one_cold_start_per_worker(gateway: RunningGateway) -> None:
    first, second = _ws_ask(gateway, [{"action": "echo"}, {"action": "echo"}])
    assert first["functionName"] == "echo"
    assert first["memory"] == "256"
    assert first["arn"].endswith(":function:echo")
    assert first["greeting"] == "hello from the catalog"  # the catalog's Function.environment
    assert 0 < first["remainingMs"] <= 10_000
    assert first["requestId"] != second["requestId"]
    assert second["pid"] == first["pid"]  # warm: same process, module state kept
    assert second["invocations"] == first["invocations"] + 1
    pool = gateway.gateway.runtime.pool("echo") if gateway.gateway.runtime else None
    assert pool is not None
    assert pool.stats.cold_starts == 1


def test_environments_are_per_function(gateway: RunningGateway) -> None:
    echo, signer = _ws_ask(gateway, [{"action": "echo"}, {"action": "sign"}])
    assert echo["functionName"] == "echo"
    assert signer["functionName"] == "signer"
    assert signer["greeting"] is None  # another function's environment does not leak
    assert echo["hasPrivateKey"] is False  # only JWT_SIGN functions see the signing key
    assert signer["hasPrivateKey"] is True
    assert echo["pid"] != signer["pid"]


def test_timeout_kills_the_worker_and_the_next_invoke_cold_starts(
    gateway: RunningGateway, recorder: Recorder
) -> None:
    runtime = gateway.gateway.runtime
    assert runtime is not None
    timed_out, fine = _ws_ask(gateway, [{"action": "slow", "sleep": 5}, {"action": "slow", "sleep": 0}])
    assert timed_out["message"] == "Internal server error"
    assert fine["slept"] == 0
    stats = runtime.pool("slow").stats
    assert stats.timeouts == 1
    assert stats.cold_starts == 2
    with recorder.lock:
        assert any("Task timed out after 1.00 seconds" in line for fn, line in recorder.logs if fn == "slow")


def test_a_worker_that_died_while_idle_is_replaced_and_the_request_succeeds(gateway: RunningGateway) -> None:
    # Lambda never hands an event to a dead sandbox: a worker killed while idle (OOM killer, a
    # stray kill) must not turn the next request into a 500.
    runtime = gateway.gateway.runtime
    assert runtime is not None
    (first,) = _ws_ask(gateway, [{"action": "sign"}])
    pool = runtime.pool("signer")
    idle = list(pool._idle)
    idle_pids = [worker.proc.pid for worker in idle]
    assert first["pid"] in idle_pids
    for pid in idle_pids:
        os.kill(pid, signal.SIGKILL)
    # os.kill only sends the signal: wait until the workers are really gone (reaped), else the
    # next request could reach one in its last instant -- a death mid-invoke, another test's case.
    assert eventually(lambda: all(worker.proc.returncode is not None for worker in idle), timeout=10)
    (again,) = _ws_ask(gateway, [{"action": "sign"}])
    assert again.get("functionName") == "signer", again
    assert again["pid"] not in idle_pids
    assert pool.stats.errors == 0


def test_a_worker_that_dies_mid_invoke_fails_that_invoke_only(gateway: RunningGateway) -> None:
    runtime = gateway.gateway.runtime
    assert runtime is not None
    died, fine = _ws_ask(gateway, [{"action": "boom", "exit": True}, {"action": "echo"}])
    assert died["message"] == "Internal server error"
    assert fine["functionName"] == "echo"
    assert runtime.pool("boom").stats.errors == 1


def test_workers_outlive_a_ctrl_c_so_the_gateway_can_stop_in_order(
    gateway: RunningGateway, recorder: Recorder
) -> None:
    # Ctrl-C in a terminal sends SIGINT to the whole foreground process group, workers included.
    # They must not die of it: the gateway still delivers $disconnect to open sockets, then stops
    # the workers itself (stdin closed, then kill).
    (first,) = _ws_ask(gateway, [{"action": "echo"}])
    os.kill(first["pid"], signal.SIGINT)
    (again,) = _ws_ask(gateway, [{"action": "echo"}])
    assert again["pid"] == first["pid"]
    with recorder.lock:
        assert not any("KeyboardInterrupt" in line for _, line in recorder.logs)


@pytest.mark.parametrize("kind", ["base64", "status", "status-text", "header"])
def test_an_integration_answer_api_gateway_cannot_use_is_its_json_500(
    gateway: RunningGateway, kind: str
) -> None:
    # API Gateway answers a malformed integration response with its own 500 JSON body (aiohttp's
    # plain-text 500 page, or a response-splitting header, would not be what clients see there).
    status, headers, body = request(gateway, "GET", "/items/special", params={"malformed": kind})
    assert status == 500
    assert json.loads(body) == {"message": "Internal Server Error"}
    assert "Injected" not in headers


def test_a_body_over_10_mb_is_api_gateways_json_413(gateway: RunningGateway, recorder: Recorder) -> None:
    before = len(recorder.events)
    status, headers, body = request(
        gateway, "POST", "/items", data=b"x" * (10 * 1024 * 1024 + 1), headers={"Origin": "http://a.example"}
    )
    assert status == 413
    assert json.loads(body) == {"message": "Request Entity Too Large"}
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert len(recorder.events) == before  # the function was never called
