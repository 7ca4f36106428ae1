"""Smoke test of the LocalStack community profile (scripts/localstack-deploy.sh runs it).

Against the deployed stack (``AWS_ENDPOINT_URL`` points boto3 at LocalStack):

1. every catalog event rule gets a positive and a negative event; each target's inbox queue must
   receive exactly the events the catalog's patterns select (the expectation is computed with the
   local EventBridge emulation's pattern matcher, so both agree on EventBridge semantics);
2. every rule target is configured with its retry policy and its DLQ (read back; see the note);
3. the fan-out queue round-trips a message;
4. a message in a dead-letter queue drives that DLQ's depth alarm to ALARM, and the alarm's
   notification reaches the ticket topic's subscriber (the alarm inbox queue).

Honest limit, printed as a NOTE: LocalStack community 2026.3 accepts EventBridge target
RetryPolicy and DeadLetterConfig and reads them back, but does not enforce them (a failing target
is logged and dropped), so retries and dead-lettering are not exercised here; the local EventBridge
emulation's tests and AWS do.

Usage: python scripts/localstack_smoke.py cdk.out/localstack-outputs.json
Every wait is bounded (``SMOKE_WAIT_S``, ``SMOKE_ALARM_WAIT_S``); exit code 1 on any failure.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3

from infra import catalog
from local_stack.eventbridge.patterns import matches

_WAIT_S = float(os.environ.get("SMOKE_WAIT_S", "30"))
#: LocalStack publishes SQS metrics every SQS_CLOUDWATCH_METRICS_REPORT_INTERVAL seconds and
#: evaluates a 1-minute alarm about once a minute: allow two evaluations.
_ALARM_WAIT_S = float(os.environ.get("SMOKE_ALARM_WAIT_S", "180"))
_OTHER_SOURCE = "chatflow.smoke.unrouted"
_OTHER_TYPE = "smoke.unrouted"


def _outputs(path: str) -> dict[str, str]:
    data: dict[str, dict[str, str]] = json.loads(Path(path).read_text())
    return next(v for k, v in data.items() if k.endswith("-LocalStack"))


def _first(pattern: dict[str, object], key: str) -> str | None:
    values = pattern.get(key)
    if isinstance(values, list) and values and isinstance(values[0], str):
        return values[0]
    return None


def rule_events(rule: catalog.EventRule) -> tuple[dict[str, Any], dict[str, Any]]:
    """A positive and a negative event for ``rule`` (fails loudly for patterns it cannot serve)."""
    source = _first(rule.pattern, "source") or catalog.EVENT_SOURCE
    detail_type = _first(rule.pattern, "detail-type")
    positive = {"source": source, "detail-type": detail_type or _OTHER_TYPE, "detail": {}}
    negative = dict(positive)
    if detail_type:
        negative["detail-type"] = _OTHER_TYPE
    else:
        negative["source"] = _OTHER_SOURCE
    if not matches(rule.pattern, positive) or matches(rule.pattern, negative):
        raise SystemExit(f"rule {rule.name}: cannot derive its events from {rule.pattern}; extend this test")
    return positive, negative


def expected_targets(event: dict[str, Any]) -> set[str]:
    return {t for rule in catalog.EVENT_RULES if matches(rule.pattern, event) for t in rule.targets}


def _inbox(outputs: dict[str, str], function: str) -> str:
    """The ``<Function>InboxUrl`` output (matched without case: no aws_cdk import for pascal())."""
    want = f"{function.replace('_', '')}inboxurl"
    (url,) = [v for k, v in outputs.items() if k.lower() == want]
    return url


def _collect(
    sqs: Any, urls: dict[str, str], markers: set[str], expected: dict[str, set[str]], wait_s: float
) -> dict[str, set[str]]:
    """Markers seen per queue (messages are deleted), until each queue has its ``expected``
    markers or ``wait_s`` passed."""
    seen: dict[str, set[str]] = {name: set() for name in urls}
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for name, url in urls.items():
            answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in answer.get("Messages", []):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                seen[name] |= {m for m in markers if m in message["Body"]}
        if all(expected.get(name, set()) <= seen[name] for name in urls):
            break
    return seen


def check_rules(events: Any, sqs: Any, outputs: dict[str, str], failures: list[str]) -> None:
    targets = sorted({t for rule in catalog.EVENT_RULES for t in rule.targets})
    inboxes = {t: _inbox(outputs, t) for t in targets}
    sent: dict[str, tuple[str, set[str]]] = {}  # marker -> (label, expected targets)
    for rule in catalog.EVENT_RULES:
        for label, event in zip(("positive", "negative"), rule_events(rule), strict=True):
            marker = str(uuid.uuid4())
            answer = events.put_events(
                Entries=[
                    {
                        "EventBusName": outputs["EventBusName"],
                        "Source": event["source"],
                        "DetailType": event["detail-type"],
                        "Detail": json.dumps({"marker": marker}),
                    }
                ]
            )
            if answer.get("FailedEntryCount"):
                failures.append(f"PutEvents for {rule.name} ({label}): {answer}")
                continue
            sent[marker] = (
                f"{rule.name} {label} ({event['source']} / {event['detail-type']})",
                expected_targets(event),
            )
    expected = {t: {m for m, (_, want) in sent.items() if t in want} for t in targets}
    seen = _collect(sqs, inboxes, set(sent), expected, _WAIT_S)
    # After the expected deliveries, a short grace period catches unexpected ones too.
    for target, extra in _collect(sqs, inboxes, set(sent), {}, 3).items():
        seen[target] |= extra
    for marker, (label, want) in sent.items():
        for target in targets:
            got = marker in seen[target]
            if got != (target in want):
                failures.append(f"{label} -> {target}: delivered={got}, expected={target in want}")
    print(f"rules: {len(catalog.EVENT_RULES)} rules, {len(sent)} events, {len(targets)} inboxes checked")


def check_target_settings(events: Any, outputs: dict[str, str], failures: list[str]) -> None:
    bus = outputs["EventBusName"]
    rules = events.list_rules(EventBusName=bus)["Rules"]
    checked = 0
    for rule in rules:
        for target in events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]:
            checked += 1
            if not target.get("RetryPolicy", {}).get("MaximumRetryAttempts"):
                failures.append(f"{rule['Name']}: target without a retry policy")
            if not target.get("DeadLetterConfig", {}).get("Arn"):
                failures.append(f"{rule['Name']}: target without a dead-letter queue")
    expected = sum(len(r.targets) for r in catalog.EVENT_RULES)
    if checked != expected:
        failures.append(f"{checked} rule targets deployed, the catalog has {expected}")
    print(
        "NOTE: LocalStack community accepts and returns EventBridge target RetryPolicy and "
        "DeadLetterConfig but does not enforce them (2026.3): retries and dead-lettering are "
        "checked as configuration only here."
    )


def check_fanout_queue(sqs: Any, outputs: dict[str, str], failures: list[str]) -> None:
    marker = str(uuid.uuid4())
    url = outputs["FanoutQueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"marker": marker}))
    if marker not in _collect(sqs, {"fanout": url}, {marker}, {"fanout": {marker}}, _WAIT_S)["fanout"]:
        failures.append("fan-out queue did not return the message")


def check_dlq_alarm(sqs: Any, cloudwatch: Any, outputs: dict[str, str], failures: list[str]) -> None:
    dlq_outputs = {k: v for k, v in outputs.items() if k.startswith("DlqUrl")}
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix="Chatflow-")["MetricAlarms"]
    depth = [a for a in alarms if "-slo-dlq-depth-" in a["AlarmName"]]
    if len(depth) != len(dlq_outputs) or not depth:
        failures.append(f"{len(depth)} DLQ-depth alarms for {len(dlq_outputs)} dead-letter queues")
        return
    key, url = sorted(dlq_outputs.items())[0]
    queue_name = url.rsplit("/", 1)[1]
    (alarm,) = [a for a in depth if a["Dimensions"] == [{"Name": "QueueName", "Value": queue_name}]]
    if alarm["StateValue"] == "ALARM":
        failures.append(f"{alarm['AlarmName']} was in ALARM before its DLQ got a message")
        return
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"smoke": "parked message"}))
    started = time.monotonic()
    state = alarm["StateValue"]
    while time.monotonic() - started < _ALARM_WAIT_S:
        state = cloudwatch.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"][0]["StateValue"]
        if state == "ALARM":
            break
        time.sleep(3)
    if state != "ALARM":
        failures.append(
            f"{alarm['AlarmName']} stayed {state} for {_ALARM_WAIT_S:.0f} s with a message in {key}"
        )
        return
    print(f"alarm: {alarm['AlarmName']} -> ALARM after {time.monotonic() - started:.0f} s")
    inbox = outputs["AlarmInboxUrl"]
    deadline = time.monotonic() + _WAIT_S
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            if alarm["AlarmName"] in message["Body"] and '"ALARM"' in message["Body"]:
                print("alarm: notification delivered to the ticket topic's subscriber")
                return
    failures.append(f"{alarm['AlarmName']}: no notification reached the ticket topic's subscriber")


def main(argv: list[str]) -> int:
    outputs = _outputs(argv[1])
    events, sqs, cloudwatch = boto3.client("events"), boto3.client("sqs"), boto3.client("cloudwatch")
    failures: list[str] = []
    check_rules(events, sqs, outputs, failures)
    check_target_settings(events, outputs, failures)
    check_fanout_queue(sqs, outputs, failures)
    check_dlq_alarm(sqs, cloudwatch, outputs, failures)
    for failure in failures:
        print("FAIL", failure)
    print("localstack smoke:", "FAILED" if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
