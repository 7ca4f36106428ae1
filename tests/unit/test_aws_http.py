"""The lean AWS JSON-protocol client (chatflow/adapters/aws_http.py): SigV4 checked against
botocore's signer, calls against the local stack's AWS endpoint (which verifies SigV4 like AWS),
errors, keep-alive reuse and a connection the server closed while idle."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chatflow.adapters.aws_http import AwsConnectionError, AwsJsonClient, AwsServiceError
from chatflow.adapters.aws_sigv4 import (
    AwsCredentials,
    NoCredentialsError,
    SigV4Signer,
    environment_credentials,
)
from local_stack.eventbridge.http_api import RunningEventBridgeApi
from local_stack.sigv4 import DEFAULT_KEY_PAIR
from tests.support.events import emulator

INSTANT = datetime(2026, 12, 3, 14, 5, 6, tzinfo=UTC)


def _botocore_authorization(creds: AwsCredentials, service: str, headers: dict[str, str], body: bytes) -> str:
    request = AWSRequest(
        method="POST", url="https://events.eu-west-1.amazonaws.com/", data=body, headers=headers
    )
    signer = botocore.auth.SigV4Auth(
        Credentials(creds.access_key, creds.secret_key, creds.token), service, "eu-west-1"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.auth, "get_current_datetime", lambda: INSTANT.replace(tzinfo=None))
        signer.add_auth(request)
    return str(request.headers["Authorization"])


@pytest.mark.parametrize("token", [None, "IQoJb3JpZ2luX2VjE//session+token="])
def test_signature_is_botocores_for_the_same_request_and_instant(token: str | None) -> None:
    creds = [AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)]
    signer = SigV4Signer("events", "eu-west-1", lambda: creds[0])
    body = json.dumps({"Entries": [{"Source": "s", "Detail": '{"é": "日本"}'}]}, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.PutEvents"}
    ours = signer.sign("events.eu-west-1.amazonaws.com", headers, body, now=INSTANT.timestamp())
    assert ours["X-Amz-Date"] == "20261203T140506Z"
    assert ("X-Amz-Security-Token" in ours) is (token is not None)
    theirs = _botocore_authorization(creds[0], "events", {**headers, "X-Amz-Date": ours["X-Amz-Date"]}, body)
    assert ours["Authorization"] == theirs
    assert "x-amz-target" in ours["Authorization"]  # the operation is signed, not only the host

    # Rotated credentials (Lambda replaces them): a new signing key, still botocore's signature.
    creds[0] = AwsCredentials("ASIAROTATED", "another/secret", token)
    rotated = signer.sign("events.eu-west-1.amazonaws.com", headers, body, now=INSTANT.timestamp())
    assert rotated["Authorization"] != ours["Authorization"]
    assert rotated["Authorization"] == _botocore_authorization(
        creds[0], "events", {**headers, "X-Amz-Date": rotated["X-Amz-Date"]}, body
    )


def test_environment_credentials_are_read_on_every_call() -> None:
    environ = {"AWS_ACCESS_KEY_ID": "AK1", "AWS_SECRET_ACCESS_KEY": "S1", "AWS_SESSION_TOKEN": "T1"}
    resolve = environment_credentials(environ)
    assert resolve() == AwsCredentials("AK1", "S1", "T1")
    environ.update(AWS_ACCESS_KEY_ID="AK2", AWS_SECRET_ACCESS_KEY="S2")
    del environ["AWS_SESSION_TOKEN"]
    assert resolve() == AwsCredentials("AK2", "S2", None)


@pytest.fixture
def api() -> Iterator[RunningEventBridgeApi]:
    with emulator() as running:
        yield running


def _events(endpoint_url: str, secret: str = DEFAULT_KEY_PAIR[1]) -> AwsJsonClient:
    return AwsJsonClient(
        signing_name="events",
        target_prefix="AWSEvents",
        json_version="1.1",
        region="us-east-1",
        endpoint_url=endpoint_url,
        credentials=lambda: AwsCredentials(DEFAULT_KEY_PAIR[0], secret),
    )


def test_calls_the_local_endpoint_which_verifies_sigv4_and_keeps_the_connection(
    api: RunningEventBridgeApi,
) -> None:
    client = _events(api.endpoint_url)
    entry = {"Source": "chatflow.chat", "DetailType": "x", "Detail": "{}", "EventBusName": "chatflow"}
    first = client.call("PutEvents", {"Entries": [entry]})
    assert first["FailedEntryCount"] == 0
    assert first["Entries"][0]["EventId"]
    connection = client._conn
    assert connection is not None
    client.call("PutEvents", {"Entries": [entry, entry]})
    assert client._conn is connection  # keep-alive: the same socket
    assert len(api.bus.archived()) == 3
    client.close()


def test_a_wrong_signature_and_a_refused_call_are_service_errors(api: RunningEventBridgeApi) -> None:
    with pytest.raises(AwsServiceError) as forged:
        _events(api.endpoint_url, secret="not-the-secret").call("PutEvents", {"Entries": []})
    assert forged.value.status == 400  # as EventBridge answers a bad signature
    assert forged.value.code == "InvalidSignatureException"
    assert api.bus.archived() == []
    with pytest.raises(AwsServiceError) as invalid:
        _events(api.endpoint_url).call("PutEvents", {"Entries": [{"Source": "s"}] * 11})
    assert invalid.value.status == 400
    assert invalid.value.code == "ValidationException"


def test_nobody_listening_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(AwsConnectionError):
        _events(f"http://127.0.0.1:{port}").call("PutEvents", {"Entries": []})


def test_a_connection_closed_while_idle_is_replaced_and_the_call_sent_once() -> None:
    """The server answers one request per connection, then closes it without saying so: the
    client's second call fails on the reused socket before any answer and is sent again once."""
    server = socket.create_server(("127.0.0.1", 0))
    served: list[bytes] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = server.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(body) < length:
                    body += conn.recv(65536)
                served.append(body)
                answer = b'{"ok":%d}' % len(served)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = _events(f"http://127.0.0.1:{server.getsockname()[1]}")
    try:
        assert client.call("PutEvents", {"n": 1}) == {"ok": 1}
        thread.join(0.5)  # the server has closed the first connection by now
        assert client.call("PutEvents", {"n": 2}) == {"ok": 2}
    finally:
        client.close()
        server.close()
    thread.join(2)
    assert [json.loads(b) for b in served] == [{"n": 1}, {"n": 2}]  # each call reached it once


def test_the_endpoint_is_resolved_as_botocore_does() -> None:
    def url(endpoint_url: str | None, environ: dict[str, str]) -> str:
        client = AwsJsonClient(
            signing_name="events",
            service_id="EventBridge",
            target_prefix="AWSEvents",
            json_version="1.1",
            region="eu-west-1",
            endpoint_url=endpoint_url,
            environ=environ,
        )
        return client.endpoint_url

    assert url(None, {}) == "https://events.eu-west-1.amazonaws.com"
    assert url(None, {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}) == "http://127.0.0.1:1"
    both = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_EVENTBRIDGE": "http://127.0.0.1:2"}
    assert url(None, both) == "http://127.0.0.1:2"
    assert url("http://127.0.0.1:3", both) == "http://127.0.0.1:3"


def test_an_endpoint_with_a_path_is_signed_for_that_path() -> None:
    """The canonical path is the path the request is sent to (botocore signs ``/prefix/``)."""
    creds = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    signer = SigV4Signer("events", "eu-west-1", lambda: creds)
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.PutEvents"}
    ours = signer.sign("events.eu-west-1.amazonaws.com", headers, b"{}", INSTANT.timestamp(), path="/prefix/")
    request = AWSRequest(
        method="POST",
        url="https://events.eu-west-1.amazonaws.com/prefix/",
        data=b"{}",
        headers={**headers, "X-Amz-Date": ours["X-Amz-Date"]},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.auth, "get_current_datetime", lambda: INSTANT.replace(tzinfo=None))
        botocore.auth.SigV4Auth(
            Credentials(creds.access_key, creds.secret_key), "events", "eu-west-1"
        ).add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert (
        ours["Authorization"]
        != signer.sign("events.eu-west-1.amazonaws.com", headers, b"{}", INSTANT.timestamp())["Authorization"]
    )


def test_no_credentials_anywhere_is_a_connection_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The shared source raises NoCredentialsError; this client reports it as AwsConnectionError
    (what the EventBridge relay retries), as before the signer was shared."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(NoCredentialsError):
        environment_credentials()()
    server = socket.create_server(("127.0.0.1", 0))  # accepts (backlog); never answers
    try:
        client = AwsJsonClient(
            signing_name="events",
            target_prefix="AWSEvents",
            json_version="1.1",
            region="us-east-1",
            endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}",
        )
        with pytest.raises(AwsConnectionError, match="no AWS credentials"):
            client.call("PutEvents", {"Entries": []})
        assert client._conn is None  # the connection is dropped, as on any failed call
    finally:
        server.close()
