"""Fidelity: Lambda's limits and asynchronous handling, through the local Lambda API and API Gateway.

AWS sources of the expected behaviour:
* reserved concurrency -- Lambda developer guide, "Configuring reserved concurrency" and
  "Lambda function scaling": invocations beyond it are throttled; a synchronous caller gets HTTP 429
  ``TooManyRequestsException`` (Invoke API reference: Reason
  ``ReservedFunctionConcurrentInvocationLimitExceeded``);
* API Gateway proxy integrations answer 500 for a throttled Lambda (the 429 is not forwarded:
  repost.aws "API Gateway proxy integration does not forward Lambda throttling (HTTP 429)");
* asynchronous invocations -- "How Lambda handles errors and retries with asynchronous invocation":
  throttled events go back to the queue and are retried (backoff from 1 s to 5 min) until the
  maximum event age, then ``condition: EventAgeExceeded`` goes to the on-failure destination;
* GetFunctionEventInvokeConfig / GetFunctionConcurrency / Invoke (DryRun 204, Event 202,
  ``X-Amz-Function-Error: Unhandled``) -- Lambda API reference.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.catalog import async_failure_queue_name
from tests.support.fidelity import ACCOUNT, REGION, Fidelity, eventually, fidelity_gateway


@pytest.fixture(scope="module")
def fid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fidelity]:
    with fidelity_gateway(tmp_path_factory.mktemp("lambda")) as running:
        yield running


def _occupy(fid: Fidelity, seconds: float, function: str = "single") -> threading.Thread:
    """Run ``function`` (reserved concurrency 1) synchronously for ``seconds`` in the background."""

    def run() -> None:
        payload = json.dumps({"mode": "sleep", "seconds": seconds})
        fid.client("lambda").invoke(FunctionName=function, Payload=payload)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    runtime = fid.gateway.gateway.runtime
    assert runtime is not None
    assert eventually(lambda: runtime.pool(function).in_flight == 1, timeout=10)
    return thread


def test_event_invoke_config_and_concurrency_come_from_the_declaration(fid: Fidelity) -> None:
    client = fid.client("lambda")
    config = client.get_function_event_invoke_config(FunctionName="worker")
    queue = async_failure_queue_name("chatflow-test", "worker")
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] == 3600
    assert (
        config["DestinationConfig"]["OnFailure"]["Destination"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}"
    )
    with pytest.raises(ClientError) as caught:
        client.get_function_event_invoke_config(FunctionName="echo")  # never invoked asynchronously
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert client.get_function_concurrency(FunctionName="single")["ReservedConcurrentExecutions"] == 1
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(FunctionName="worker")


def test_invoke_types_answer_as_lambda(fid: Fidelity) -> None:
    client = fid.client("lambda")
    ok = client.invoke(FunctionName=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:worker", Payload=b'{"n": 1}')
    assert (ok["StatusCode"], "FunctionError" in ok) == (200, False)
    assert json.loads(ok["Payload"].read()) == {"ok": True, "function": "worker"}
    failed = client.invoke(FunctionName="worker", Payload=json.dumps({"mode": "fail"}))
    assert (failed["StatusCode"], failed["FunctionError"]) == (200, "Unhandled")
    assert json.loads(failed["Payload"].read())["errorMessage"] == "worker failed on purpose"
    assert client.invoke(FunctionName="worker", InvocationType="DryRun")["StatusCode"] == 204
    queued = client.invoke(FunctionName="worker", InvocationType="Event", Payload=json.dumps({"n": "async"}))
    assert queued["StatusCode"] == 202
    assert eventually(lambda: [i for i in fid.invocations("worker") if i["payload"] == {"n": "async"}])
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName="no-such-function")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_reserved_concurrency_throttles_synchronous_callers(fid: Fidelity) -> None:
    before = len(fid.invocations("single"))
    busy = _occupy(fid, 2.0)
    try:
        with pytest.raises(ClientError) as caught:
            fid.client("lambda").invoke(FunctionName="single", Payload=b"{}")
        error: dict[str, Any] = dict(caught.value.response)
        assert error["Error"]["Code"] == "TooManyRequestsException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        # Through API Gateway the throttle is its 500, as for any failed Lambda integration.
        request = urllib.request.Request(fid.gateway.http_url + "/single", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as http_error:
            urllib.request.urlopen(request, timeout=10)
        assert http_error.value.code == 500
        assert json.loads(http_error.value.read()) == {"message": "Internal Server Error"}
    finally:
        busy.join(10)
    runtime = fid.gateway.gateway.runtime
    assert runtime is not None
    assert runtime.pool("single").stats.throttles >= 2
    assert len(fid.invocations("single")) == before + 1  # only the first ran
    # Free again: the next caller gets through.
    assert fid.client("lambda").invoke(FunctionName="single", Payload=b"{}")["StatusCode"] == 200


def test_throttled_asynchronous_events_are_retried_until_they_run(fid: Fidelity) -> None:
    async_lambda = fid.gateway.gateway.async_lambda
    assert async_lambda is not None
    throttled_before = async_lambda.stats["single"].throttled
    # Busy long enough that the queued event meets the reserved concurrency in use, well within
    # its maximum age (single: 3600 s -> 6 s here).
    busy = _occupy(fid, 1.5)
    fid.client("lambda").invoke(
        FunctionName="single", InvocationType="Event", Payload=json.dumps({"n": "later"})
    )
    assert eventually(lambda: async_lambda.stats["single"].throttled > throttled_before, timeout=10)
    busy.join(10)
    assert eventually(lambda: [i for i in fid.invocations("single") if i["payload"] == {"n": "later"}])


def test_an_event_throttled_past_its_maximum_age_goes_to_the_on_failure_queue(fid: Fidelity) -> None:
    # brief: MaximumEventAgeInSeconds 60 -> 0.1 s here (AsyncTiming 1/600); busy for 1.5 s.
    busy = _occupy(fid, 1.5, "brief")
    marker = f"too-old-{time.time()}"
    fid.client("lambda").invoke(
        FunctionName="brief", InvocationType="Event", Payload=json.dumps({"n": marker})
    )
    sqs = fid.client("sqs")
    queue = sqs.get_queue_url(QueueName=async_failure_queue_name("chatflow-test", "brief"))["QueueUrl"]

    def record() -> dict[str, Any] | None:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        bodies = [json.loads(m["Body"]) for m in got.get("Messages", [])]
        return next((b for b in bodies if b["requestPayload"] == {"n": marker}), None)

    found = eventually(record, timeout=15)
    busy.join(10)
    assert found is not None
    assert found["requestContext"]["condition"] == "EventAgeExceeded"
    assert found["requestContext"]["approximateInvokeCount"] == 0  # it never ran
    assert "responseContext" not in found
    assert not [i for i in fid.invocations("brief") if i["payload"] == {"n": marker}]
