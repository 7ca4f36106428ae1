"""Fidelity: the local @connections API and AWS endpoint answer unsigned or mis-signed calls as
AWS does, the functions sign theirs, and ``verify_sigv4=False`` (``--no-sigv4``) is the opt-out.

Expected answers (sources in docs/local-stack.md, "SigV4"):
* API Gateway (REST: @connections, and Lambda's REST API): HTTP 403, ``x-amzn-ErrorType`` +
  ``{"message": ...}`` -- "Missing Authentication Token" without a signature;
* AWS JSON services (EventBridge, SQS): HTTP 400, ``{"__type", "message"}`` (e.g. EventBridge
  answered "InvalidSignatureException (HTTP 400). Credential should be scoped to correct service:
  'events'." -- github.com/paws-r/paws/issues/426).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.aws import signed_request
from tests.support.fidelity import KEYS, Fidelity, fidelity_gateway


@pytest.fixture(scope="module")
def fid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fidelity]:
    # A developer's own credentials in the environment must not leak into the functions.
    own = {
        "AWS_ACCESS_KEY_ID": "AKIADEVELOPERSOWN",
        "AWS_SECRET_ACCESS_KEY": "developers-own-secret",
        "AWS_SESSION_TOKEN": "developers-session-token",
    }
    with fidelity_gateway(tmp_path_factory.mktemp("sigv4"), env=own) as running:
        yield running


def _raw(request: urllib.request.Request) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def _mgmt(fid: Fidelity, **overrides: Any) -> Any:
    kwargs: dict[str, Any] = {
        "endpoint_url": fid.gateway.management_endpoint,
        "region_name": "us-east-1",
        "config": Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        **KEYS,
        **overrides,
    }
    return boto3.client("apigatewaymanagementapi", **kwargs)


def test_unsigned_connections_call_is_api_gateways_403_missing_authentication_token(fid: Fidelity) -> None:
    url = f"{fid.gateway.management_endpoint}/@connections/BFHPhfCWIAMCKlQ%3D"
    status, headers, body = _raw(urllib.request.Request(url, data=b"hi", method="POST"))
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert body == {"message": "Missing Authentication Token"}


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"aws_access_key_id": "AKIAUNKNOWN"}, "UnrecognizedClientException"),
        ({"aws_secret_access_key": "wrong"}, "InvalidSignatureException"),
        ({"region_name": "eu-west-1"}, "InvalidSignatureException"),
        ({"aws_session_token": "a-session-token"}, "UnrecognizedClientException"),
    ],
)
def test_mis_signed_connections_calls_are_refused_with_403(
    fid: Fidelity, overrides: dict[str, str], code: str
) -> None:
    with pytest.raises(ClientError) as caught:
        _mgmt(fid, **overrides).get_connection(ConnectionId="BFHPhfCWIAMCKlQ=")
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_correctly_signed_connections_call_reaches_the_api(fid: Fidelity) -> None:
    with pytest.raises(ClientError) as caught:  # signed right: API Gateway's own answer for an unknown id
        _mgmt(fid).get_connection(ConnectionId="BFHPhfCWIAMCKlQ=")
    assert caught.value.response["Error"]["Code"] == "GoneException"


def test_unsigned_events_call_is_a_json_missing_authentication_token(fid: Fidelity) -> None:
    request = urllib.request.Request(
        fid.endpoint,
        data=json.dumps({"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}"}]}).encode(),
        method="POST",
        headers={"X-Amz-Target": "AWSEvents.PutEvents", "Content-Type": "application/x-amz-json-1.1"},
    )
    status, _, body = _raw(request)
    assert status == 400
    assert body == {
        "__type": "MissingAuthenticationTokenException",
        "message": "Missing Authentication Token",
    }
    assert fid.gateway.gateway.bus.archived() == []  # nothing of it was accepted


def test_events_call_signed_for_another_service_is_refused(fid: Fidelity) -> None:
    payload = json.dumps({"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}"}]}).encode()
    headers = {"X-Amz-Target": "AWSEvents.PutEvents", "Content-Type": "application/x-amz-json-1.1"}
    status, _, body = _raw(
        signed_request("POST", fid.endpoint + "/", service="execute-api", body=payload, headers=headers)
    )
    assert status == 400
    assert body == {
        "__type": "InvalidSignatureException",
        "message": "Credential should be scoped to correct service: 'events'. ",
    }


#: One cheap read per service of the AWS endpoint.
CALLS: dict[str, tuple[str, dict[str, str]]] = {
    "events": ("list_rules", {}),
    "sqs": ("list_queues", {}),
    "lambda": ("get_function_concurrency", {"FunctionName": "single"}),
}


@pytest.mark.parametrize(("service", "status"), [("events", 400), ("sqs", 400), ("lambda", 403)])
def test_every_service_of_the_endpoint_verifies_its_signature(
    fid: Fidelity, service: str, status: int
) -> None:
    operation, params = CALLS[service]
    with pytest.raises(ClientError) as caught:
        getattr(fid.client(service, aws_access_key_id="AKIAUNKNOWN"), operation)(**params)
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    getattr(fid.client(service), operation)(**params)  # the local key pair passes


def test_functions_sign_with_the_local_key_pair_whatever_the_developer_has_set(fid: Fidelity) -> None:
    runtime = fid.gateway.gateway.runtime
    assert runtime is not None
    env = runtime.pool("notify").env
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("testing", "testing")
    assert "AWS_SESSION_TOKEN" not in env
    # The handler's own boto3 client: signed right, it gets API Gateway's 410 for an unknown id
    # (a signature problem would be a 403 UnrecognizedClientException / InvalidSignatureException).
    answer = fid.client("lambda").invoke(
        FunctionName="notify",
        Payload=json.dumps({"body": json.dumps({"to": "BFHPhfCWIAMCKlQ=", "data": {}})}),
    )
    assert answer["FunctionError"] == "Unhandled"
    assert json.loads(answer["Payload"].read())["errorType"] == "GoneException"


def test_no_sigv4_is_the_opt_out_for_tools_that_cannot_sign(tmp_path: Path) -> None:
    with fidelity_gateway(tmp_path, verify_sigv4=False) as lax:
        url = f"{lax.gateway.management_endpoint}/@connections/BFHPhfCWIAMCKlQ%3D"
        status, headers, _ = _raw(urllib.request.Request(url, method="GET"))
        assert (status, headers["x-amzn-ErrorType"].split(":")[0]) == (410, "GoneException")
        request = urllib.request.Request(
            lax.endpoint,
            data=json.dumps({"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}"}]}).encode(),
            method="POST",
            headers={"X-Amz-Target": "AWSEvents.PutEvents"},
        )
        status, _, body = _raw(request)
        assert (status, body["FailedEntryCount"]) == (200, 0)
