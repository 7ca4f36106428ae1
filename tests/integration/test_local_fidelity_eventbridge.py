"""Fidelity: EventBridge and Lambda as the cloud runs them, through the local AWS endpoint with
boto3 (as testers and LocalStack users do).

AWS sources of the expected behaviour (docs/local-stack-eventbridge.md cites them too):
* TestEventPattern -- "the following fields are mandatory: id, account, source, time, region,
  resources, detail-type" (EventBridge API reference, TestEventPattern); missing -> ValidationException;
* PutRule / PutTargets / RemoveTargets / DeleteRule / ListRules / ListTargetsByRule (EventBridge API
  reference); "ScheduleExpression is supported only on the default event bus."; DeleteRule of a rule
  with targets -> ValidationException;
* targets and retries -- EventBridge user guide, "Event retry policy and using dead-letter queues":
  the RetryPolicy covers delivery to the target; a missing resource goes to the DLQ without retry;
  the DLQ message carries RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE, EXHAUSTED_RETRY_CONDITION,
  RETRY_ATTEMPTS; API destinations retry 401/407/409/429/5xx only ("API destinations");
* Lambda targets -- Lambda developer guide, "How Lambda handles errors and retries with asynchronous
  invocation": EventBridge hands the event to Lambda asynchronously; a function error is retried
  per the function's EventInvokeConfig (here 2 retries), then an invocation record
  (``condition: RetriesExhausted``, ``approximateInvokeCount``, ``requestPayload``,
  ``responsePayload``) goes to the on-failure destination.
"""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chatflow.events.schemas import MemberLeft
from chatflow_dev import events as tools
from infra.catalog import async_failure_queue_name
from tests.support.fidelity import ACCOUNT, REGION, Fidelity, eventually, fidelity_gateway

EVENT = {
    "id": "e9b1a0d4-5f4e-4a6b-9f6e-0d6f1f1e0001",
    "account": "123456789012",
    "source": "fidelity.test",
    "time": "2026-11-25T10:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail-type": "probe",
    "detail": {"n": 3},
}


@pytest.fixture(scope="module")
def fid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fidelity]:
    with fidelity_gateway(tmp_path_factory.mktemp("eventbridge")) as running:
        yield running


def worker_arn(function: str = "worker") -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"


def put_probe(
    fid: Fidelity, detail: dict[str, Any], source: str = "fidelity.test", detail_type: str = "probe"
) -> str:
    answer = fid.client("events").put_events(
        Entries=[
            {
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": "chatflow",
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0, answer
    return str(answer["Entries"][0]["EventId"])


def make_rule(fid: Fidelity, name: str, pattern: dict[str, Any], targets: list[dict[str, Any]]) -> str:
    events = fid.client("events")
    arn = events.put_rule(Name=name, EventPattern=json.dumps(pattern), EventBusName="chatflow")["RuleArn"]
    assert events.put_targets(Rule=name, EventBusName="chatflow", Targets=targets)["FailedEntryCount"] == 0
    return str(arn)


def target(target_id: str, arn: str, dlq_arn: str, retries: int, **extra: Any) -> dict[str, Any]:
    """A PutTargets target with a RetryPolicy (600 s maximum age) and a DLQ."""
    return {
        "Id": target_id,
        "Arn": arn,
        "RetryPolicy": {"MaximumRetryAttempts": retries, "MaximumEventAgeInSeconds": 600},
        "DeadLetterConfig": {"Arn": dlq_arn},
        **extra,
    }


def make_queue(fid: Fidelity, name: str) -> tuple[str, str]:
    sqs = fid.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return str(url), str(arn)


def receive_all(fid: Fidelity, url: str) -> list[dict[str, Any]]:
    got = fid.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
    )
    return list(got.get("Messages", []))


# --- TestEventPattern -----------------------------------------------------------------------------


def test_test_event_pattern_matches_a_complete_event(fid: Fidelity) -> None:
    events = fid.client("events")
    pattern = json.dumps({"source": ["fidelity.test"], "detail": {"n": [{"numeric": [">", 2]}]}})
    assert events.test_event_pattern(EventPattern=pattern, Event=json.dumps(EVENT))["Result"] is True


@pytest.mark.parametrize("missing", ["id", "account", "source", "time", "region", "resources", "detail-type"])
def test_test_event_pattern_refuses_an_event_without_a_mandatory_field(fid: Fidelity, missing: str) -> None:
    event = {k: v for k, v in EVENT.items() if k != missing}
    with pytest.raises(ClientError) as caught:
        fid.client("events").test_event_pattern(
            EventPattern=json.dumps({"source": ["x"]}), Event=json.dumps(event)
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert caught.value.response["Error"]["Message"] == "Parameter Event is not valid."


@pytest.mark.parametrize("change", [{"resources": "arn:x"}, {"time": "yesterday"}, {"id": 7}])
def test_test_event_pattern_refuses_mistyped_envelope_fields(fid: Fidelity, change: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as caught:
        fid.client("events").test_event_pattern(
            EventPattern=json.dumps({"source": ["x"]}), Event=json.dumps({**EVENT, **change})
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"


# --- rules through the API --------------------------------------------------------------------------


def test_put_rule_put_targets_list_and_delete_like_aws(fid: Fidelity) -> None:
    events = fid.client("events")
    dlq_url, dlq_arn = make_queue(fid, "fidelity-crud-dlq")
    arn = make_rule(
        fid,
        "fidelity-crud",
        {"source": ["fidelity.crud"]},
        [target("w", worker_arn(), dlq_arn, 4)],
    )
    assert arn == f"arn:aws:events:{REGION}:{ACCOUNT}:rule/chatflow/fidelity-crud"
    listed = events.list_rules(EventBusName="chatflow", NamePrefix="fidelity-crud")["Rules"]
    assert [(r["Name"], r["State"], json.loads(r["EventPattern"])) for r in listed] == [
        ("fidelity-crud", "ENABLED", {"source": ["fidelity.crud"]})
    ]
    (described,) = events.list_targets_by_rule(Rule="fidelity-crud", EventBusName="chatflow")["Targets"]
    assert described == target("w", worker_arn(), dlq_arn, 4)

    event_id = put_probe(fid, {"n": 1}, source="fidelity.crud")
    fid.wait_idle()
    assert [i["payload"]["detail"] for i in fid.invocations("worker", event_id)] == [{"n": 1}]

    events.disable_rule(Name="fidelity-crud", EventBusName="chatflow")
    quiet = put_probe(fid, {"n": 2}, source="fidelity.crud")
    fid.wait_idle()
    assert fid.invocations("worker", quiet) == []
    events.enable_rule(Name="fidelity-crud", EventBusName="chatflow")

    with pytest.raises(ClientError) as caught:
        events.delete_rule(Name="fidelity-crud", EventBusName="chatflow")
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert caught.value.response["Error"]["Message"] == "Rule can't be deleted since it has targets."
    events.remove_targets(Rule="fidelity-crud", EventBusName="chatflow", Ids=["w"])
    events.delete_rule(Name="fidelity-crud", EventBusName="chatflow")
    assert events.list_rules(EventBusName="chatflow", NamePrefix="fidelity-crud")["Rules"] == []
    with pytest.raises(ClientError) as caught:
        events.describe_rule(Name="fidelity-crud", EventBusName="chatflow")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert receive_all(fid, dlq_url) == []


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"ScheduleExpression": "rate(1 minute)"}, "ValidationException"),  # custom bus
        ({}, "ValidationException"),  # neither pattern nor schedule
        ({"EventPattern": json.dumps({"source": "not-a-list"})}, "InvalidEventPatternException"),
    ],
)
def test_put_rule_refuses_what_aws_refuses(fid: Fidelity, kwargs: dict[str, str], code: str) -> None:
    with pytest.raises(ClientError) as caught:
        fid.client("events").put_rule(Name="fidelity-bad", EventBusName="chatflow", **kwargs)
    assert caught.value.response["Error"]["Code"] == code


def test_put_targets_on_a_missing_rule_is_resource_not_found(fid: Fidelity) -> None:
    with pytest.raises(ClientError) as caught:
        fid.client("events").put_targets(
            Rule="no-such-rule", EventBusName="chatflow", Targets=[{"Id": "a", "Arn": worker_arn()}]
        )
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_queue_target_gets_the_input_path_of_the_event(fid: Fidelity) -> None:
    url, arn = make_queue(fid, "fidelity-inbox")
    make_rule(
        fid,
        "fidelity-to-queue",
        {"source": ["fidelity.queue"]},
        [{"Id": "q", "Arn": arn, "InputPath": "$.detail"}],
    )
    put_probe(fid, {"n": 7, "room": "r1"}, source="fidelity.queue")
    fid.wait_idle()
    (message,) = receive_all(fid, url)
    assert json.loads(message["Body"]) == {"n": 7, "room": "r1"}


def test_a_target_that_does_not_exist_is_dead_lettered_without_retries(fid: Fidelity) -> None:
    dlq_url, dlq_arn = make_queue(fid, "fidelity-missing-dlq")
    rule_arn = make_rule(
        fid,
        "fidelity-missing",
        {"source": ["fidelity.missing"]},
        [target("ghost", worker_arn("no-such-function"), dlq_arn, 5)],
    )
    event_id = put_probe(fid, {"n": 1}, source="fidelity.missing")
    fid.wait_idle()
    (message,) = receive_all(fid, dlq_url)
    assert json.loads(message["Body"])["id"] == event_id
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "NO_RESOURCE"
    assert attributes["RETRY_ATTEMPTS"] == "0"  # not retried: the resource does not exist
    assert attributes["RULE_ARN"] == rule_arn
    assert attributes["TARGET_ARN"] == worker_arn("no-such-function")


# --- API destinations (HTTP endpoint targets) ----------------------------------------------------


class Endpoint:
    """An HTTP endpoint that records requests and answers the scripted statuses (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[int] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                recorder.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = recorder.script.pop(0) if recorder.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    recorder = Endpoint()
    yield recorder
    recorder.server.shutdown()


@pytest.fixture(scope="module")
def api_destination(fid: Fidelity, endpoint: Endpoint) -> tuple[str, str]:
    """An API destination (with an API-key connection) targeted by rule ``fidelity-hook``; its DLQ."""
    events = fid.client("events")
    connection = events.create_connection(
        Name="fidelity-hook",
        AuthorizationType="API_KEY",
        AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": "k3y"}},
    )
    assert connection["ConnectionState"] == "AUTHORIZED"
    destination = events.create_api_destination(
        Name="fidelity-hook",
        ConnectionArn=connection["ConnectionArn"],
        InvocationEndpoint=endpoint.url,
        HttpMethod="POST",
    )["ApiDestinationArn"]
    assert destination.startswith(f"arn:aws:events:{REGION}:{ACCOUNT}:api-destination/fidelity-hook/")
    dlq_url, dlq_arn = make_queue(fid, "fidelity-hook-dlq")
    make_rule(
        fid,
        "fidelity-hook",
        {"source": ["fidelity.hook"]},
        [
            target(
                "hook",
                destination,
                dlq_arn,
                2,
                InputTransformer={
                    "InputPathsMap": {"n": "$.detail.n", "kind": "$.detail-type"},
                    "InputTemplate": '{"count": <n>, "kind": "<kind>", "rule": "<aws.events.rule-name>"}',
                },
                HttpParameters={"HeaderParameters": {"X-Team": "chat"}},
            )
        ],
    )
    return dlq_url, destination


def test_an_api_destination_receives_the_transformed_event_with_its_connection_auth(
    fid: Fidelity, endpoint: Endpoint, api_destination: tuple[str, str]
) -> None:
    endpoint.requests.clear()
    put_probe(fid, {"n": 5}, source="fidelity.hook")
    fid.wait_idle()
    (request,) = endpoint.requests
    assert json.loads(request["body"]) == {"count": 5, "kind": "probe", "rule": "fidelity-hook"}
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["x-api-key"] == "k3y"
    assert headers["x-team"] == "chat"
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["user-agent"] == "Amazon/EventBridge/ApiDestinations"


def test_an_api_destination_5xx_is_retried_and_a_4xx_dead_lettered_at_once(
    fid: Fidelity, endpoint: Endpoint, api_destination: tuple[str, str]
) -> None:
    dlq_url, destination = api_destination
    endpoint.requests.clear()
    endpoint.script = [500, 503]  # then 200: within MaximumRetryAttempts=2
    put_probe(fid, {"n": 1}, source="fidelity.hook")
    fid.wait_idle()
    assert len(endpoint.requests) == 3
    assert receive_all(fid, dlq_url) == []

    endpoint.requests.clear()
    endpoint.script = [400]
    event_id = put_probe(fid, {"n": 2}, source="fidelity.hook")
    fid.wait_idle()
    assert len(endpoint.requests) == 1  # a 400 is not retried
    (message,) = receive_all(fid, dlq_url)
    assert json.loads(message["Body"])["id"] == event_id
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["TARGET_ARN"] == destination
    assert "400" in attributes["ERROR_MESSAGE"]

    endpoint.requests.clear()
    endpoint.script = [500, 500, 500]
    put_probe(fid, {"n": 3}, source="fidelity.hook")
    fid.wait_idle()
    assert len(endpoint.requests) == 3  # first try + 2 retries
    (message,) = receive_all(fid, dlq_url)
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttemptsExhausted"
    assert attributes["RETRY_ATTEMPTS"] == "2"


# --- Lambda targets: two stages -------------------------------------------------------------------


@pytest.fixture(scope="module")
def lambda_rule(fid: Fidelity) -> str:
    """Rule ``fidelity-members`` -> worker, with the rule's own retry policy and DLQ; returns the DLQ URL."""
    dlq_url, dlq_arn = make_queue(fid, "fidelity-members-worker-dlq")
    make_rule(
        fid,
        "fidelity-members",
        {"source": ["chatflow.chat"], "detail-type": ["member.left"]},
        [target("worker", worker_arn(), dlq_arn, 2)],
    )
    return dlq_url


def _member_left() -> dict[str, Any]:
    return MemberLeft(room_id=uuid.uuid4(), user_id=uuid.uuid4()).detail()


@pytest.fixture
def worker_failing(fid: Fidelity) -> Iterator[Path]:
    flag = Path(str(fid.invocation_log) + ".fail")
    flag.touch()
    yield flag
    flag.unlink(missing_ok=True)


def test_a_failing_function_is_retried_by_lambda_not_by_the_rule(
    fid: Fidelity, lambda_rule: str, worker_failing: Path
) -> None:
    event_id = put_probe(fid, _member_left(), source="chatflow.chat", detail_type="member.left")
    fid.wait_idle()
    # Delivery to Lambda succeeded at once: the rule's DLQ stays empty, its retries unused.
    assert receive_all(fid, lambda_rule) == []
    # Lambda ran the function 1 + MaximumRetryAttempts (2) times ...
    assert len(fid.invocations("worker", event_id)) == 3
    # ... then sent the invocation record to the function's on-failure queue.
    queue = fid.client("sqs").get_queue_url(QueueName=async_failure_queue_name("chatflow-test", "worker"))
    records = [json.loads(m["Body"]) for m in receive_all(fid, queue["QueueUrl"])]
    (record,) = [r for r in records if r["requestPayload"]["id"] == event_id]
    assert set(record) == {
        "version",
        "timestamp",
        "requestContext",
        "requestPayload",
        "responseContext",
        "responsePayload",
    }
    assert record["version"] == "1.0"
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"] == f"{worker_arn()}:$LATEST"
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == "worker failed on purpose"


def test_lambda_refusing_the_event_is_what_the_rule_retries_and_dead_letters(
    fid: Fidelity, lambda_rule: str
) -> None:
    async_lambda = fid.gateway.gateway.async_lambda
    assert async_lambda is not None
    async_lambda.faults.fail_next(-1)  # the Lambda service answers 5xx to every Invoke
    try:
        event_id = put_probe(fid, _member_left(), source="chatflow.chat", detail_type="member.left")
        fid.wait_idle()
    finally:
        async_lambda.faults.fail_next(0)
    assert fid.invocations("worker", event_id) == []  # never reached the function
    assert async_lambda.faults.rejected >= 3  # first try + the rule's 2 retries
    (message,) = receive_all(fid, lambda_rule)
    assert json.loads(message["Body"])["id"] == event_id
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttemptsExhausted"
    assert attributes["RETRY_ATTEMPTS"] == "2"


def test_both_queues_are_redriven_with_the_cloud_tool(
    fid: Fidelity, lambda_rule: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m chatflow_dev.events redrive --queue-url`` with AWS_ENDPOINT_URL at the stack:
    the function's on-failure queue and the rule's DLQ, as in the cloud."""
    from tests.support.settings import reset_settings_cache

    sqs = fid.client("sqs")
    failures_url = sqs.get_queue_url(QueueName=async_failure_queue_name("chatflow-test", "worker"))[
        "QueueUrl"
    ]
    for url in (failures_url, lambda_rule):
        sqs.purge_queue(QueueUrl=url)
    failing, refused = _member_left(), _member_left()
    flag = Path(str(fid.invocation_log) + ".fail")
    flag.touch()
    put_probe(fid, failing, source="chatflow.chat", detail_type="member.left")
    fid.wait_idle()
    flag.unlink()
    async_lambda = fid.gateway.gateway.async_lambda
    assert async_lambda is not None
    async_lambda.faults.fail_next(-1)
    put_probe(fid, refused, source="chatflow.chat", detail_type="member.left")
    fid.wait_idle()
    async_lambda.faults.fail_next(0)

    def runs(detail: dict[str, Any]) -> int:
        return sum(1 for line in fid.invocations("worker") if line["payload"]["detail"] == detail)

    assert (runs(failing), runs(refused)) == (3, 0)
    for name, value in {
        "AWS_ENDPOINT_URL": fid.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "EVENT_BUS_NAME": "chatflow",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("EVENTS_ENDPOINT_URL", raising=False)
    reset_settings_cache()
    try:
        for url in (failures_url, lambda_rule):
            assert tools.main(["redrive", "--queue-url", url]) == 0
            outcome = json.loads(capsys.readouterr().out)
            assert (outcome["redriven"], outcome["invalid"], outcome["failed"]) == (1, 0, 0)
    finally:
        reset_settings_cache()
    fid.wait_idle()
    assert receive_all(fid, failures_url) == []
    assert receive_all(fid, lambda_rule) == []
    # Both reached the healed worker once more: re-put events with the same detail.
    assert eventually(lambda: (runs(failing), runs(refused)) == (4, 1))
