"""chatflow.observability.XRayTracer: the subsegment documents the X-Ray daemon receives."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from chatflow.adapters.aws_http import AwsCredentials, AwsJsonClient, AwsServiceError
from chatflow.observability import TraceHeader, XRayTracer, daemon_address
from local_stack.sigv4 import DEFAULT_KEY_PAIR
from tests.support.events import emulator

ROOT = "1-6750a1b2-0123456789abcdef01234567"


@pytest.fixture
def daemon() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


def _received(sock: socket.socket, count: int) -> list[dict[str, Any]]:
    docs = []
    for _ in range(count):
        header, _, body = sock.recv(65536).partition(b"\n")
        assert json.loads(header) == {"format": "json", "version": 1}
        docs.append(json.loads(body))
    return docs


def _tracer(sock: socket.socket, sampled: str = "1") -> XRayTracer:
    environ = {"_X_AMZN_TRACE_ID": f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled={sampled}"}
    return XRayTracer("chatflow", address=f"127.0.0.1:{sock.getsockname()[1]}", environ=environ)


def test_handler_subsegment_with_annotations_and_a_nested_call(daemon: socket.socket) -> None:
    tracer = _tracer(daemon)

    @tracer.capture_lambda_handler
    def handler(event: Any, context: Any) -> str:
        with tracer.subsegment("events", namespace="aws", extra={"aws": {"operation": "PutEvents"}}):
            pass
        return "ok"

    assert handler({}, None) == "ok"
    inner, outer = _received(daemon, 2)  # the inner one ends first
    assert outer["name"] == "## handler"
    assert outer["type"] == "subsegment"
    assert outer["trace_id"] == ROOT
    assert outer["parent_id"] == "53995c3f42cd8ad8"  # Lambda's invocation segment
    assert outer["annotations"] == {"ColdStart": True, "Service": "chatflow"}
    assert outer["start_time"] <= inner["start_time"] <= inner["end_time"] <= outer["end_time"]
    assert inner["parent_id"] == outer["id"]
    assert inner["trace_id"] == ROOT
    assert inner["namespace"] == "aws"
    assert inner["aws"] == {"operation": "PutEvents"}
    assert "fault" not in outer
    handler({}, None)
    (_, second) = _received(daemon, 2)
    assert second["annotations"]["ColdStart"] is False


def test_an_exception_is_the_fault_cause_and_still_raised(daemon: socket.socket) -> None:
    tracer = _tracer(daemon)

    @tracer.capture_lambda_handler
    def handler(event: Any, context: Any) -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        handler({}, None)
    (doc,) = _received(daemon, 1)
    assert doc["fault"] is True
    (exc,) = doc["cause"]["exceptions"]
    assert exc["type"] == "ValueError"
    assert exc["message"] == "broken"
    assert exc["stack"][0]["label"] == "handler"


def test_unsampled_invocations_and_calls_outside_a_handler_send_nothing(daemon: socket.socket) -> None:
    tracer = _tracer(daemon, sampled="0")
    assert tracer.capture_lambda_handler(lambda event, context: 1)({}, None) == 1
    with tracer.subsegment("events", namespace="aws") as doc:
        assert doc == {}
    daemon.settimeout(0.2)
    with pytest.raises(TimeoutError):
        daemon.recv(65536)


def test_headers_and_daemon_addresses() -> None:
    header = TraceHeader.parse(f"Root={ROOT};Parent=abc;Sampled=1;Lineage=x:1")
    assert header == TraceHeader(ROOT, "abc", True)
    assert TraceHeader.parse("Parent=abc") is None
    assert daemon_address("169.254.79.129:2000") == ("169.254.79.129", 2000)
    assert daemon_address("tcp:127.0.0.1:2000 udp:127.0.0.2:2001") == ("127.0.0.2", 2001)
    assert daemon_address(None) == ("127.0.0.1", 2000)


def test_lean_aws_calls_are_subsegments_like_the_sdks_botocore_patch(daemon: socket.socket) -> None:
    tracer = _tracer(daemon)
    with emulator() as api:
        client = AwsJsonClient(
            signing_name="events",
            target_prefix="AWSEvents",
            json_version="1.1",
            region="us-east-1",
            endpoint_url=api.endpoint_url,
            credentials=lambda: AwsCredentials(*DEFAULT_KEY_PAIR),
            tracer=tracer,
        )

        @tracer.capture_lambda_handler
        def handler(event: Any, context: Any) -> None:
            client.call("PutEvents", {"Entries": [{"Source": "s", "DetailType": "x", "Detail": "{}"}]})
            with pytest.raises(AwsServiceError):
                client.call("PutEvents", {"Entries": [{"Source": "s"}] * 11})

        handler({}, None)
        client.close()
    ok, refused, outer = _received(daemon, 3)
    assert ok["name"] == "events"
    assert ok["namespace"] == "aws"
    assert ok["aws"] == {"operation": "PutEvents", "region": "us-east-1"}
    assert ok["http"] == {"response": {"status": 200}}
    assert ok["parent_id"] == outer["id"]
    assert refused["http"] == {"response": {"status": 400}}
    assert refused["error"] is True
    assert "fault" not in refused
    assert refused["cause"]["exceptions"][0]["type"] == "AwsServiceError"
