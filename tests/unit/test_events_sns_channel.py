"""SNS delivery channel against a loopback HTTP endpoint that answers like SNS (Query protocol,
XML) and records the requests (SNS itself cannot run here): through the functions' lean client
(``make_sns_client``) and through a real boto3 SNS client."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from botocore.config import Config

from chatflow.adapters.aws_http import AwsCredentials, AwsServiceError
from chatflow.adapters.sns_delivery import SnsApi, SnsNotificationChannel, make_sns_client
from chatflow.domain.notification_models import Notification
from chatflow.settings import Settings

TOPIC = "arn:aws:sns:us-east-1:000000000000:chatflow-notifications"


def _notification(user_id: uuid.UUID, preview: str = "hi") -> Notification:
    return Notification(
        id=7,
        user_id=user_id,
        kind="mention",
        room_id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        message_id=uuid.uuid4(),
        seq=3,
        actor_id=uuid.uuid4(),
        actor_handle="sam",
        preview=preview,
        created_at=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        read_at=None,
    )


class _Sns(BaseHTTPRequestHandler):
    requests: list[dict[str, list[str]]] = []
    fail = False
    attempts = 0
    #: Answer 500 to this many requests first, then succeed.
    fail_first = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).attempts += 1
        if type(self).fail or type(self).attempts <= type(self).fail_first:
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"<ErrorResponse><Error><Code>InternalError</Code></Error></ErrorResponse>")
            return
        type(self).requests.append(parse_qs(body))
        xml = (
            '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>'
            f"<MessageId>{uuid.uuid4()}</MessageId></PublishResult>"
            "<ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(xml)))
        self.end_headers()
        self.wfile.write(xml)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sns_endpoint() -> Iterator[str]:
    _Sns.requests = []
    _Sns.fail = False
    _Sns.attempts = 0
    _Sns.fail_first = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sns)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["lean", "boto3"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _lean(endpoint: str) -> SnsApi:
    settings = Settings(aws_endpoint_url=endpoint, aws_region="us-east-1")
    api = make_sns_client(settings, credentials=lambda: AwsCredentials("testing", "testing"))
    api._sleep = lambda _: None
    return api


def _make(kind: str, endpoint: str) -> Any:
    return _lean(endpoint) if kind == "lean" else _client(endpoint)


def _client(endpoint: str) -> Any:
    return boto3.client(
        "sns",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def test_publishes_json_with_user_and_kind_attributes(sns_endpoint: str, kind: str) -> None:
    user = uuid.uuid4()
    channel = SnsNotificationChannel(TOPIC, client_factory=lambda: _make(kind, sns_endpoint))
    assert channel.deliver(_notification(user, "hi ☕")) is True
    (request,) = _Sns.requests
    assert request["Action"] == ["Publish"]
    assert request["TopicArn"] == [TOPIC]
    message = json.loads(request["Message"][0])
    assert message["type"] == "notification"
    assert (message["userId"], message["kind"], message["id"]) == (str(user), "mention", 7)
    assert "hi ☕" in request["Message"][0]  # UTF-8 as is, not \u escapes
    attributes = {
        request[f"MessageAttributes.entry.{i}.Name"][0]: request[
            f"MessageAttributes.entry.{i}.Value.StringValue"
        ][0]
        for i in (1, 2)
    }
    assert attributes == {"user_id": str(user), "kind": "mention"}


def test_failure_propagates_so_the_delivery_is_retried(sns_endpoint: str, kind: str) -> None:
    _Sns.fail = True
    channel = SnsNotificationChannel(TOPIC, client_factory=lambda: _make(kind, sns_endpoint))
    with pytest.raises(Exception, match=r"InternalError|500"):
        channel.deliver(_notification(uuid.uuid4()))


def test_the_lean_client_retries_5xx_like_botocores_standard_mode(sns_endpoint: str) -> None:
    _Sns.fail_first = 2
    channel = SnsNotificationChannel(TOPIC, client_factory=lambda: _lean(sns_endpoint))
    assert channel.deliver(_notification(uuid.uuid4())) is True
    assert _Sns.attempts == 3
    assert len(_Sns.requests) == 1
    _Sns.attempts, _Sns.fail_first = 0, 3
    with pytest.raises(AwsServiceError) as caught:
        channel.deliver(_notification(uuid.uuid4()))
    assert (caught.value.status, caught.value.code) == (500, "InternalError")
    assert _Sns.attempts == 3  # three attempts in all, then the error


def test_unconfigured_channel_logs_and_creates_no_client(caplog: pytest.LogCaptureFixture) -> None:
    def no_client() -> Any:
        raise AssertionError("no client for an unconfigured channel")

    channel = SnsNotificationChannel(None, client_factory=no_client)
    caplog.set_level(logging.INFO, logger="chatflow.adapters.sns_delivery")
    assert channel.deliver(_notification(uuid.uuid4())) is False
    assert "not configured" in caplog.text
