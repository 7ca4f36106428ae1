"""Alarms reach someone: the page/ticket topics, their KMS key, the routing of every alarm, the
burn-rate windows, the SLIs' formulas, the runbook of every alarm, the 30-day budget widgets.

One synthesized app per session (tests/infra/conftest.py) plus, where a setting matters, own apps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from infra import slos
from infra.observability import runbook_path
from tests.infra.conftest import ROOT, cdk_context

pytestmark = pytest.mark.infra

Json = dict[str, Any]


def _resources(template: Mapping[str, Any], kind: str) -> dict[str, Json]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _topic_ids(obs: Mapping[str, Any]) -> dict[str, str]:
    """severity -> the logical id of its topic."""
    topics = _resources(obs, "AWS::SNS::Topic")
    out: dict[str, str] = {}
    for key, topic in topics.items():
        for severity in slos.SEVERITIES:
            if topic["Properties"].get("DisplayName", "").endswith(f" {severity}"):
                out[severity] = key
    assert set(out) <= set(slos.SEVERITIES), topics
    return out


def _refs(actions: list[Any]) -> set[str]:
    return {a["Ref"] for a in actions if isinstance(a, dict) and "Ref" in a}


def _all_alarms(obs: Mapping[str, Any]) -> dict[str, Json]:
    return {
        **_resources(obs, "AWS::CloudWatch::Alarm"),
        **_resources(obs, "AWS::CloudWatch::CompositeAlarm"),
    }


def _name(alarm: Json) -> str:
    props = alarm["Properties"]
    return str(props.get("AlarmName") or props.get("CompositeAlarmName"))


# --- issue 11.1: topics, key, routing -----------------------------------------------------------
def test_alarm_topics_use_a_customer_managed_key_cloudwatch_may_use(template_json: dict[str, Json]) -> None:
    obs = template_json["Observability"]
    (key_id, key), *_ = _resources(obs, "AWS::KMS::Key").items()
    assert len(_resources(obs, "AWS::KMS::Key")) == 1
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert len(cloudwatch) == 1
    assert cloudwatch[0]["Effect"] == "Allow"
    assert sorted(cloudwatch[0]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    for topic in _resources(obs, "AWS::SNS::Topic").values():
        # Not the AWS managed alias/aws/sns: CloudWatch could not publish to it.
        assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert "alias/aws/sns" not in json.dumps(obs)


def test_cloudwatch_of_this_account_may_publish_to_both_topics(template_json: dict[str, Json]) -> None:
    obs = template_json["Observability"]
    topics = _topic_ids(obs)
    policies = _resources(obs, "AWS::SNS::TopicPolicy").values()
    for topic_id in topics.values():
        (policy,) = [p for p in policies if {"Ref": topic_id} in p["Properties"]["Topics"]]
        allows = [
            s
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Allow" and s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        ]
        assert len(allows) == 1
        assert allows[0]["Action"] == "sns:Publish"
        assert "aws:SourceAccount" in allows[0]["Condition"]["StringEquals"]
        assert ":alarm:*" in json.dumps(allows[0]["Condition"]["ArnLike"])


def test_every_alarm_routes_to_its_severity_topic(template_json: dict[str, Json]) -> None:
    obs = template_json["Observability"]
    topics = _topic_ids(obs)
    alarms = _all_alarms(obs)
    composites = _resources(obs, "AWS::CloudWatch::CompositeAlarm")
    # Burn-rate parts notify nobody themselves: each belongs to exactly one composite that does.
    in_composites = json.dumps([c["Properties"]["AlarmRule"] for c in composites.values()])
    routed = 0
    for key, alarm in alarms.items():
        props = alarm["Properties"]
        name = _name(alarm)
        actions = _refs(props.get("AlarmActions", []))
        if not actions:
            assert re.search(r"-(long|short)$", name), f"{name} notifies nobody"
            assert key in in_composites, name
            continue
        severity = re.match(r"^\[(page|ticket)\]", props["AlarmDescription"])
        assert severity, f"{name}: description must start with its severity"
        assert actions == {topics[severity.group(1)]}, name
        ok = _refs(props.get("OKActions", []))
        assert ok == (actions if severity.group(1) == "page" else set()), name
        routed += 1
    assert routed > 20


def test_burn_windows_follow_the_workbook(template_json: dict[str, Json]) -> None:
    obs = template_json["Observability"]
    topics = _topic_ids(obs)
    alarms = {_name(a): a["Properties"] for a in _all_alarms(obs).values()}
    availability = slos.slo("availability")
    assert isinstance(availability, slos.RatioSlo)
    expected = {
        "fast": (3600, 300, 14.4, "page"),
        "slow": (21600, 1800, 6.0, "page"),
        "steady": (259200, 21600, 1.0, "ticket"),
    }
    for window, (long_s, short_s, factor, severity) in expected.items():
        for part, period in (("long", long_s), ("short", short_s)):
            alarm = alarms[f"Chatflow-dev-slo-availability-{window}-{part}"]
            assert alarm["Threshold"] == pytest.approx(factor * availability.budget)
            assert {m["MetricStat"]["Period"] for m in alarm["Metrics"] if "MetricStat" in m} == {period}
            # CloudWatch's limits for metric-math alarms.
            assert len([m for m in alarm["Metrics"] if "MetricStat" in m]) <= 10
            assert period * alarm["EvaluationPeriods"] <= 7 * 86400
        burn = alarms[f"Chatflow-dev-slo-availability-{window}-burn"]
        assert _refs(burn["AlarmActions"]) == {topics[severity]}


def test_every_slo_has_alarms_and_a_runbook_that_exists() -> None:
    for slo in slos.SLOS:
        page = ROOT / runbook_path(slo.name)
        assert page.is_file(), f"{slo.name}: missing {page.relative_to(ROOT)}"
        text = page.read_text()
        for section in ("## What it means for users", "## First three checks", "## Commands"):
            assert section in text, f"{page.name}: missing {section!r}"
        assert re.search(r"```(bash|sh)\n", text), f"{page.name}: no commands"


def _runbook_links(template: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    out = []
    for alarm in _all_alarms(template).values():
        match = re.search(r"Runbook: (\S+)$", alarm["Properties"].get("AlarmDescription", ""))
        out.append((_name(alarm), match.group(1) if match else None))
    return out


def test_every_synthesized_alarm_links_a_runbook_page_that_exists(template_json: dict[str, Json]) -> None:
    links = [link for template in template_json.values() for link in _runbook_links(template)]
    assert len(links) > 40
    for name, link in links:
        assert link, f"{name}: no runbook link"
        assert (ROOT / link).is_file(), f"{name}: {link} does not exist"


def test_every_slo_of_the_list_has_alarms(cdk_app: Any) -> None:
    built = cdk_app.stacks["Observability"].alarms
    for slo in slos.SLOS:
        assert built[slo.name], slo.name
        if isinstance(slo, slos.RatioSlo):
            assert len(built[slo.name]) == 3 * len(slos.BURN_WINDOWS)  # long + short + composite


def test_dlq_depth_alarm_for_every_dead_letter_queue(cdk_app: Any, template_json: dict[str, Json]) -> None:
    stacks = cdk_app.stacks
    dlqs = {**stacks["Functions"].dead_letter_queues, **stacks["Events"].dead_letter_queues}
    names = [_name(a) for a in _all_alarms(template_json["Observability"]).values()]
    assert len([n for n in names if n.startswith("Chatflow-dev-slo-dlq-depth-")]) == len(dlqs) > 0


def test_valkey_rds_proxy_replica_and_async_function_alarms_exist(template_json: dict[str, Json]) -> None:
    names = [_name(a) for a in _all_alarms(template_json["Observability"]).values()]
    for prefix in (
        "redis-evictions-",
        "redis-memory-saturation-",
        "redis-connections-",
        "db-proxy-connections",
        "db-proxy-borrow-latency",
        "aurora-replica-lag",
        "async-function-errors-notifications",
        "async-function-errors-analytics",
        "async-function-errors-outbox_relay",
    ):
        assert any(n.startswith(f"Chatflow-dev-slo-{prefix}") for n in names), prefix


def test_subscriptions_come_from_the_environment(tmp_path: Path) -> None:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    import infra

    app = cdk.App(
        context=cdk_context(
            env="staging",
            **{
                "chatflow:alarmPageSubscriptions": "oncall@example.com,https://events.example.com/hook",
                "chatflow:alarmTicketSubscriptions": "arn:aws:lambda:eu-west-1:123456789012:function:chat",
            },
        ),
        outdir=str(tmp_path),
    )
    obs = Template.from_stack(infra.build(app).stacks["Observability"]).to_json()
    topics = _topic_ids(obs)
    subs = [s["Properties"] for s in _resources(obs, "AWS::SNS::Subscription").values()]
    got = {(s["Protocol"], s["Endpoint"], s["TopicArn"]["Ref"]) for s in subs}
    assert got == {
        ("email", "oncall@example.com", topics["page"]),
        ("https", "https://events.example.com/hook", topics["page"]),
        ("lambda", "arn:aws:lambda:eu-west-1:123456789012:function:chat", topics["ticket"]),
    }


def test_a_malformed_subscription_fails_the_synth() -> None:
    import aws_cdk as cdk

    from infra.observability import subscription

    with pytest.raises(ValueError, match="expected an email address"):
        subscription(cdk.Stack(cdk.App()), "pagerduty")


# --- issue 11.4: what the SLIs measure -----------------------------------------------------------
def _expression(alarm: Json) -> tuple[str, dict[str, Json]]:
    metrics = alarm["Metrics"]
    (expr,) = [m["Expression"] for m in metrics if "Expression" in m]
    stats = {m["Id"]: m["MetricStat"] for m in metrics if "MetricStat" in m}
    return expr, stats


def test_ws_availability_counts_client_frames_not_fanout_and_not_refusals(
    template_json: dict[str, Json],
) -> None:
    alarms = {_name(a): a["Properties"] for a in _all_alarms(template_json["Observability"]).values()}
    expr, stats = _expression(alarms["Chatflow-dev-slo-availability-fast-long"])
    names = {i: (s["Metric"]["MetricName"], s["Stat"]) for i, s in stats.items()}
    assert ("MessageCount", "Sum") not in names.values()
    assert ("IntegrationLatency", "SampleCount") in names.values()
    bad, _, total = expr.partition(") / (")
    by_name = {v[0]: k for k, v in names.items()}
    # Refusals by design are subtracted from the bad events, never added.
    for refused in ("ConnectRefusedAuth", "ConnectRefusedLimit"):
        assert by_name[refused] in bad.split(" - ", 1)[1]
        assert by_name[refused] not in total
    assert by_name["IntegrationLatency"] in total


def test_lambda_error_ratios_count_throttles_on_both_sides(template_json: dict[str, Json]) -> None:
    alarms = {_name(a): a["Properties"] for a in _all_alarms(template_json["Observability"]).values()}
    for slo in ("ws-message-errors", "fanout-delivery", "authorizer-errors"):
        expr, stats = _expression(alarms[f"Chatflow-dev-slo-{slo}-fast-long"])
        throttles = [i for i, s in stats.items() if s["Metric"]["MetricName"] == "Throttles"]
        assert len(throttles) == 1, slo
        bad, _, total = expr.partition(") / (")
        assert throttles[0] in bad, slo
        assert throttles[0] in total, slo


def test_budget_left_widgets_cover_thirty_days(template_json: dict[str, Json]) -> None:
    (dashboard,) = _resources(template_json["Observability"], "AWS::CloudWatch::Dashboard").values()
    body = json.loads(
        "".join(
            p if isinstance(p, str) else "X" for p in dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
        )
    )
    budget = [w for w in body["widgets"] if "budget left" in w["properties"].get("title", "")]
    assert len(budget) == len([s for s in slos.SLOS if isinstance(s, slos.RatioSlo)])
    for widget in budget:
        assert widget["properties"]["start"] == "-P30D"
        assert widget["properties"]["setPeriodToTimeRange"] is True


def test_docs_state_the_formula_of_every_slo() -> None:
    text = (ROOT / "docs" / "slos.md").read_text()
    for slo in slos.SLOS:
        assert f"| {slo.name} |" in text, slo.name


def test_localstack_profile_alarms_link_runbooks_and_go_to_the_ticket_topic(tmp_path: Path) -> None:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    import infra

    app = cdk.App(context=cdk_context(profile="localstack-community"), outdir=str(tmp_path))
    (stack,) = infra.build(app).stacks.values()
    template = Template.from_stack(stack).to_json()
    links = _runbook_links(template)
    assert links
    for name, link in links:
        assert link, name
        assert (ROOT / link).is_file(), f"{name}: {link}"
    topics = _topic_ids(template)
    for alarm in _all_alarms(template).values():
        assert _refs(alarm["Properties"]["AlarmActions"]) == {topics["ticket"]}
