"""The local @connections API speaks to the real boto3 apigatewaymanagementapi client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local_stack.connections import (
    MAX_POST_BYTES,
    RecordingBackend,
    RunningManagementApi,
    new_connection_id,
    running_management_api,
)
from tests.support.aws import signed_request


@pytest.fixture(scope="module")
def api() -> Iterator[RunningManagementApi]:
    with running_management_api() as running:
        yield running


def _client(endpoint_url: str) -> object:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


def test_connection_ids_look_like_api_gateways() -> None:
    cid = new_connection_id()
    assert len(cid) == 16
    assert cid.endswith("=")
    assert cid != new_connection_id()


def test_post_reaches_the_connection_through_a_staged_endpoint(api: RunningManagementApi) -> None:
    backend: RecordingBackend = api.backend
    cid = backend.register()
    client = _client(api.endpoint_url)  # http://host:port/local -> /local/@connections/{id}
    client.post_to_connection(ConnectionId=cid, Data=b'{"type":"hello"}')  # type: ignore[attr-defined]
    assert backend.posted_json(cid) == [{"type": "hello"}]


def test_stage_less_endpoint_works_too(api: RunningManagementApi) -> None:
    backend: RecordingBackend = api.backend
    cid = backend.register()
    client = _client(api.base_url)
    client.post_to_connection(ConnectionId=cid, Data=b"x")  # type: ignore[attr-defined]
    assert backend.posted(cid) == [b"x"]


def test_get_connection_returns_times_and_identity(api: RunningManagementApi) -> None:
    backend: RecordingBackend = api.backend
    cid = backend.register(source_ip="10.1.2.3", user_agent="pytest-agent")
    info = _client(api.endpoint_url).get_connection(ConnectionId=cid)  # type: ignore[attr-defined]
    assert isinstance(info["ConnectedAt"], datetime)
    assert isinstance(info["LastActiveAt"], datetime)
    assert info["Identity"] == {"SourceIp": "10.1.2.3", "UserAgent": "pytest-agent"}


def test_delete_closes_and_later_calls_are_gone(api: RunningManagementApi) -> None:
    backend: RecordingBackend = api.backend
    cid = backend.register()
    client = _client(api.endpoint_url)
    client.delete_connection(ConnectionId=cid)  # type: ignore[attr-defined]
    assert backend.closed_by_api(cid)
    with pytest.raises(client.exceptions.GoneException):  # type: ignore[attr-defined]
        client.delete_connection(ConnectionId=cid)  # type: ignore[attr-defined]


@pytest.mark.parametrize("operation", ["post_to_connection", "get_connection", "delete_connection"])
def test_unknown_and_vanished_connections_answer_410_gone(api: RunningManagementApi, operation: str) -> None:
    backend: RecordingBackend = api.backend
    client = _client(api.endpoint_url)
    vanished = backend.register()
    backend.mark_gone(vanished)
    for cid in ("neverConnected0=", vanished):
        kwargs: dict[str, object] = {"ConnectionId": cid}
        if operation == "post_to_connection":
            kwargs["Data"] = b"x"
        with pytest.raises(client.exceptions.GoneException) as caught:  # type: ignore[attr-defined]
            getattr(client, operation)(**kwargs)
        # GoneException is a ClientError: callers must catch it first (see api-gateway facts).
        assert isinstance(caught.value, ClientError)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    assert backend.posted(vanished) == []


def test_payload_over_128_kb_is_413(api: RunningManagementApi) -> None:
    backend: RecordingBackend = api.backend
    cid = backend.register()
    client = _client(api.endpoint_url)
    client.post_to_connection(ConnectionId=cid, Data=b"a" * MAX_POST_BYTES)  # type: ignore[attr-defined]
    with pytest.raises(ClientError) as caught:
        client.post_to_connection(ConnectionId=cid, Data=b"a" * (MAX_POST_BYTES + 1))  # type: ignore[attr-defined]
    assert caught.value.response["Error"]["Code"] == "PayloadTooLargeException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert len(backend.posted(cid)) == 1


def test_gone_body_is_json_with_the_error_type_header(api: RunningManagementApi) -> None:
    url = f"{api.endpoint_url}/@connections/unknown%3D"
    request = signed_request("POST", url, service="execute-api", body=b"x")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 410
    assert caught.value.headers["x-amzn-ErrorType"].startswith("GoneException")
    assert json.loads(caught.value.read()) == {"message": None}


def test_wrong_stage_is_forbidden_when_the_stage_is_pinned() -> None:
    with running_management_api(stage="prod", strict_stage=True) as api:
        cid = api.backend.register()
        client = _client(api.base_url + "/other")
        with pytest.raises(ClientError) as caught:
            client.post_to_connection(ConnectionId=cid, Data=b"x")  # type: ignore[attr-defined]
        assert caught.value.response["Error"]["Code"] == "ForbiddenException"
        _client(api.endpoint_url).post_to_connection(ConnectionId=cid, Data=b"x")  # type: ignore[attr-defined]
        assert api.backend.posted(cid) == [b"x"]


def test_artificial_latency_delays_every_answer() -> None:
    with running_management_api(latency_s=0.05) as api:
        cid = api.backend.register()
        client = _client(api.endpoint_url)
        client.post_to_connection(ConnectionId=cid, Data=b"x")  # type: ignore[attr-defined]
        assert api.api.requests == 1
        assert api.api.latency_s == 0.05
        api.set_latency(0)
        client.post_to_connection(ConnectionId=cid, Data=b"y")  # type: ignore[attr-defined]
        assert api.backend.posted(cid) == [b"x", b"y"]


def test_wait_for_posts_returns_once_enough_arrived(api: RunningManagementApi) -> None:
    backend: RecordingBackend = api.backend
    cid = backend.register()
    _client(api.endpoint_url).post_to_connection(ConnectionId=cid, Data=b"1")  # type: ignore[attr-defined]
    assert backend.wait_for_posts(cid, 1, timeout=5) == [b"1"]
