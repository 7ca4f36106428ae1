"""Smoke test of the LocalStack community profile (scripts/localstack-deploy.sh runs it).

Against the deployed stack (``AWS_ENDPOINT_URL`` points boto3 at LocalStack): events put on the
bus reach exactly the inbox queues the catalog's rules select, the fan-out queue round-trips a
message, and a DLQ-depth alarm exists for every dead-letter queue.
Usage: python scripts/localstack_smoke.py cdk.out/localstack-outputs.json
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3

from infra import catalog

_WAIT_S = 30


def _outputs(path: str) -> dict[str, str]:
    data: dict[str, dict[str, str]] = json.loads(Path(path).read_text())
    return next(v for k, v in data.items() if k.endswith("-LocalStack"))


def _drain(sqs: Any, url: str, marker: str, want: bool) -> bool:
    """True when a message containing ``marker`` arrives (waits only when one is expected)."""
    deadline = time.monotonic() + (_WAIT_S if want else 5)
    while time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2)
        for message in answer.get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if marker in message["Body"]:
                return True
    return False


def _inbox(outputs: dict[str, str], function: str) -> str:
    key = "".join(p.capitalize() for p in function.split("_")) + "InboxUrl"
    return outputs[key]


def main(argv: list[str]) -> int:
    outputs = _outputs(argv[1])
    events, sqs, cloudwatch = boto3.client("events"), boto3.client("sqs"), boto3.client("cloudwatch")
    failures: list[str] = []

    cases = [("message.created", {"notifications", "analytics"}), ("user.online", {"analytics"})]
    for detail_type, expected in cases:
        marker = str(uuid.uuid4())
        answer = events.put_events(
            Entries=[
                {
                    "EventBusName": outputs["EventBusName"],
                    "Source": catalog.EVENT_SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps({"marker": marker}),
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            failures.append(f"PutEvents {detail_type}: {answer}")
            continue
        targets = {t for rule in catalog.EVENT_RULES for t in rule.targets}
        for function in sorted(targets):
            got = _drain(sqs, _inbox(outputs, function), marker, want=function in expected)
            if got != (function in expected):
                failures.append(
                    f"{detail_type} -> {function}: delivered={got}, expected={function in expected}"
                )

    fanout = outputs["FanoutQueueUrl"]
    marker = str(uuid.uuid4())
    sqs.send_message(QueueUrl=fanout, MessageBody=json.dumps({"marker": marker}))
    if not _drain(sqs, fanout, marker, want=True):
        failures.append("fan-out queue did not return the message")

    alarms = cloudwatch.describe_alarms(AlarmNamePrefix="Chatflow-")["MetricAlarms"]
    if not [a for a in alarms if "-slo-dlq-depth-" in a["AlarmName"]]:
        failures.append("no DLQ-depth alarms deployed")

    for failure in failures:
        print("FAIL", failure)
    print("localstack smoke:", "FAILED" if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
