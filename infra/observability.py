"""Observability: page and ticket alarm topics, one set of alarms per SLO (infra/slos.py), a dashboard.

- Topics: ``page`` (wakes someone) and ``ticket`` (next working day), encrypted with a customer
  managed KMS key whose policy lets CloudWatch encrypt to them -- CloudWatch cannot publish to a
  topic encrypted with the AWS managed ``alias/aws/sns`` key (that key's policy cannot name a
  service principal), so every alarm would fail to notify. Subscriptions per environment come
  from the config (``alarmPageSubscriptions`` / ``alarmTicketSubscriptions``).
- RatioSlo -> for each burn window (:data:`infra.slos.BURN_WINDOWS`): a long- and a short-window
  alarm on the error ratio (CloudWatch metric math), joined by a composite alarm (long AND short)
  that notifies the window's severity topic. Only composites notify: one incident, one message.
- LatencySlo -> a percentile alarm; ThresholdSlo -> one alarm per resource it expands to.
- Every alarm's description links to its runbook, ``docs/runbooks/<slo>.md``.
- Dashboard: per SLO its SLI, and for error budgets the budget left over the last 30 days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_applicationsignals as applicationsignals
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.common import pascal
from infra.config import EnvConfig
from infra.slos import (
    BUDGET_PERIOD_DAYS,
    BURN_WINDOWS,
    SEVERITIES,
    SLOS,
    LatencySlo,
    MetricRef,
    RatioSlo,
    Severity,
    ThresholdSlo,
)

_EACH = re.compile(r"^\{each:([a-z_]+)\}$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+(?::[a-z_]+)?)\}")
#: CloudWatch's limit for an alarm description.
_MAX_DESCRIPTION = 1024


@dataclass(frozen=True)
class MonitoredResources:
    """Names the SLO placeholders resolve to (tokens from the other stacks)."""

    refs: dict[str, str]  # "ws_api_id" -> token, "fn:ws_messages" -> function name, ...
    each: dict[str, dict[str, str]]  # "dlq" -> {label: queue name}, "cache_node" -> {...}


def runbook_path(slo_name: str) -> str:
    """The runbook of an SLO's alarms, relative to the repository root."""
    return f"docs/runbooks/{slo_name}.md"


def runbook_link(config: EnvConfig, slo_name: str) -> str:
    """Where an alarm's runbook is: ``runbookBaseUrl`` + the path (the path alone without one)."""
    base = config.runbook_base_url.rstrip("/")
    path = runbook_path(slo_name)
    return f"{base}/{path}" if base else path


def alarm_description(config: EnvConfig, slo_name: str, text: str) -> str:
    """``text`` plus the runbook link, cut so the link always survives CloudWatch's 1024 limit."""
    link = f" Runbook: {runbook_link(config, slo_name)}"
    return text[: _MAX_DESCRIPTION - len(link)] + link


def subscription(scope: Construct, endpoint: str) -> sns.ITopicSubscription:
    """A topic subscription for one configured endpoint: an email address, an HTTPS URL (a pager
    or chat webhook), or the ARN of a Lambda function or SQS queue (e.g. a chat forwarder)."""
    ident = "Sub" + re.sub(r"[^A-Za-z0-9]", "", endpoint.title())[-48:]
    if endpoint.startswith("https://"):
        return subscriptions.UrlSubscription(endpoint, protocol=sns.SubscriptionProtocol.HTTPS)
    if endpoint.startswith("arn:") and ":lambda:" in endpoint:
        from aws_cdk import aws_lambda as lambda_

        return subscriptions.LambdaSubscription(lambda_.Function.from_function_arn(scope, ident, endpoint))
    if endpoint.startswith("arn:") and ":sqs:" in endpoint:
        from aws_cdk import aws_sqs as sqs

        return subscriptions.SqsSubscription(sqs.Queue.from_queue_arn(scope, ident, endpoint))
    if re.fullmatch(r"[^@\s/:]+@[^@\s/:]+\.[^@\s/:]+", endpoint):
        return subscriptions.EmailSubscription(endpoint)
    raise ValueError(
        f"alarm subscription {endpoint!r}: expected an email address, an https:// URL, or a Lambda "
        "function / SQS queue ARN"
    )


def alarm_topic_key(scope: Construct, construct_id: str, config: EnvConfig) -> kms.Key:
    """The customer managed key of the alarm topics. Its policy lets CloudWatch encrypt messages
    for the topics (kms:GenerateDataKey*, kms:Decrypt); who may publish is the topics' policy."""
    key = kms.Key(
        scope,
        construct_id,
        description=f"Chatflow {config.env}: alarm topics (CloudWatch alarms publish to them)",
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.RETAIN if config.is_prod else RemovalPolicy.DESTROY,
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarmsEncryptToAlarmTopics",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
        )
    )
    return key


def alarm_topic(
    scope: Construct, construct_id: str, config: EnvConfig, severity: Severity, key: kms.IKey
) -> sns.Topic:
    """A TLS-only alarm topic encrypted with ``key`` that this account's CloudWatch alarms (and
    only those: confused-deputy conditions) may publish to."""
    stack = Stack.of(scope)
    topic = sns.Topic(
        scope,
        construct_id,
        display_name=f"Chatflow {config.env} {severity}",
        enforce_ssl=True,
        master_key=key,
    )
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": stack.format_arn(service="cloudwatch", resource="alarm:*")},
            },
        )
    )
    return topic


class ObservabilityStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        resources: MonitoredResources,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.config = config
        self.resources = resources
        self.alarm_key = alarm_topic_key(self, "AlarmKey", config)
        #: "page" and "ticket" -> the topic alarms of that severity notify.
        self.topics: dict[Severity, sns.Topic] = {}
        configured = {"page": config.alarm_page_subscriptions, "ticket": config.alarm_ticket_subscriptions}
        for severity in SEVERITIES:
            topic = alarm_topic(self, f"{severity.capitalize()}Topic", config, severity, self.alarm_key)
            for endpoint in configured[severity]:
                topic.add_subscription(subscription(topic, endpoint))
            self.topics[severity] = topic
            CfnOutput(
                self,
                f"{severity.capitalize()}TopicArn",
                value=topic.topic_arn,
                description=f"Subscribe {severity} receivers here (e.g. a chat integration)",
            )
        #: SLO name -> the alarms built for it (tests check every SLO has some).
        self.alarms: dict[str, list[cw.AlarmBase]] = {}
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{config.prefix}-slos")
        if config.application_signals:
            applicationsignals.CfnDiscovery(self, "ApplicationSignalsDiscovery")
        #: SLO name -> its native Application Signals SLO (only with applicationSignals on).
        self.native_slos: dict[str, applicationsignals.CfnServiceLevelObjective] = {}
        for slo in SLOS:
            self.alarms[slo.name] = []
            if isinstance(slo, RatioSlo):
                self._ratio(slo)
                if config.application_signals:
                    self._native_slo(slo)
            elif isinstance(slo, LatencySlo):
                self._latency(slo)
            else:
                self._threshold(slo)

    def _notify(self, alarm: cw.AlarmBase, severity: Severity) -> None:
        """Route ``alarm`` to its severity's topic; pages also send OK, so a pager resolves itself."""
        action = cw_actions.SnsAction(self.topics[severity])
        alarm.add_alarm_action(action)
        if severity == "page":
            alarm.add_ok_action(action)

    # --- metrics ------------------------------------------------------------------------------
    def _resolve(self, value: str) -> str:
        def sub(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in self.resources.refs:
                raise KeyError(f"SLO placeholder {{{key}}} has no resource")
            return self.resources.refs[key]

        return _PLACEHOLDER.sub(sub, value)

    def _metric(self, ref: MetricRef, statistic: str, period: Duration, **dims: str) -> cw.Metric:
        dimensions = {k: dims.get(k) or self._resolve(v) for k, v in ref.dimensions.items()}
        return cw.Metric(
            namespace=ref.namespace,
            metric_name=ref.name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=period,
        )

    def _ratio_expression(self, slo: RatioSlo, period: Duration) -> cw.MathExpression:
        using: dict[str, cw.IMetric] = {}
        ids: dict[tuple[object, ...], str] = {}

        def summed(refs: tuple[MetricRef, ...]) -> str:
            terms = []
            for ref in refs:
                # One metric per distinct reference: alarms allow 10 metrics per expression.
                if ref.key not in ids:
                    ids[ref.key] = f"m{len(ids)}"
                    using[ids[ref.key]] = self._metric(ref, ref.stat, period)
                terms.append(f"FILL({ids[ref.key]}, 0)")
            return " + ".join(terms)

        bad, total = summed(slo.bad), summed(slo.total)
        if slo.not_bad:
            bad = f"MAX([0, {bad} - ({summed(slo.not_bad)})])"
        return cw.MathExpression(
            expression=f"IF(({total}) > 0, ({bad}) / ({total}), 0)",
            using_metrics=using,
            period=period,
            label=f"{slo.name} error ratio",
        )

    # --- alarms per SLO kind ------------------------------------------------------------------
    def _ratio(self, slo: RatioSlo) -> None:
        ident = pascal(slo.name)
        for window in BURN_WINDOWS:
            threshold = window.factor * slo.budget
            parts: list[cw.Alarm] = []
            for label, seconds in (("long", window.long_s), ("short", window.short_s)):
                alarm = cw.Alarm(
                    self,
                    f"{ident}{window.name.capitalize()}{label.capitalize()}",
                    alarm_name=f"{self.config.prefix}-slo-{slo.name}-{window.name}-{label}",
                    alarm_description=alarm_description(
                        self.config,
                        slo.name,
                        f"SLO {slo.name} ({slo.objective}%): error ratio over {_span(seconds)} above "
                        f"{window.factor}x the budget (part of the {window.name}-burn composite).",
                    ),
                    metric=self._ratio_expression(slo, Duration.seconds(seconds)),
                    threshold=threshold,
                    comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    evaluation_periods=1,
                    treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                )
                parts.append(alarm)
                self.alarms[slo.name].append(alarm)
            composite = cw.CompositeAlarm(
                self,
                f"{ident}{window.name.capitalize()}Burn",
                composite_alarm_name=f"{self.config.prefix}-slo-{slo.name}-{window.name}-burn",
                alarm_description=alarm_description(
                    self.config,
                    slo.name,
                    f"[{window.severity}] SLO {slo.name}: error budget burning {window.factor}x too fast "
                    f"({_span(window.long_s)} and {_span(window.short_s)} windows). {slo.description}.",
                ),
                alarm_rule=cw.AlarmRule.all_of(*parts),
            )
            self._notify(composite, window.severity)
            self.alarms[slo.name].append(composite)

        remaining = cw.MathExpression(
            expression=f"100 * (1 - e / {slo.budget})",
            using_metrics={"e": self._ratio_expression(slo, Duration.days(1))},
            label=f"{slo.name}: error budget left (%)",
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title=f"{slo.name} ({slo.objective}%) error ratio",
                left=[self._ratio_expression(slo, Duration.minutes(5))],
                left_annotations=[
                    cw.HorizontalAnnotation(value=slo.budget, label="budget"),
                    *(
                        cw.HorizontalAnnotation(value=w.factor * slo.budget, label=f"{w.name} burn")
                        for w in BURN_WINDOWS
                    ),
                ],
                width=16,
            ),
            # The whole 30 days as ONE value: the widget's own time range, and its period set to
            # that range (without both, it shows the dashboard's last 3 hours).
            cw.SingleValueWidget(
                title=f"{slo.name}: budget left, {BUDGET_PERIOD_DAYS} d",
                metrics=[remaining],
                start=f"-P{BUDGET_PERIOD_DAYS}D",
                set_period_to_time_range=True,
                width=8,
            ),
        )

    def _native_slo(self, slo: RatioSlo) -> None:
        """The same error budget as an Application Signals SLO (request-based: bad / total)."""
        cfn = applicationsignals.CfnServiceLevelObjective

        def stat(
            ref: MetricRef, query_id: str
        ) -> applicationsignals.CfnServiceLevelObjective.MetricDataQueryProperty:
            return cfn.MetricDataQueryProperty(
                id=query_id,
                return_data=False,
                metric_stat=cfn.MetricStatProperty(
                    metric=cfn.MetricProperty(
                        namespace=ref.namespace,
                        metric_name=ref.name,
                        dimensions=[
                            cfn.DimensionProperty(name=k, value=self._resolve(v))
                            for k, v in ref.dimensions.items()
                        ],
                    ),
                    period=60,
                    stat=ref.stat,
                ),
            )

        def queries(
            refs: tuple[MetricRef, ...], prefix: str, minus: tuple[MetricRef, ...] = ()
        ) -> list[applicationsignals.CfnServiceLevelObjective.MetricDataQueryProperty]:
            out = [stat(ref, f"{prefix}{i}") for i, ref in enumerate(refs)]
            less = [stat(ref, f"{prefix}x{i}") for i, ref in enumerate(minus)]
            total = " + ".join(f"FILL({q.id}, 0)" for q in out)
            if less:
                total = f"MAX([0, {total} - ({' + '.join(f'FILL({q.id}, 0)' for q in less)})])"
            out += less
            out.append(cfn.MetricDataQueryProperty(id=f"{prefix}sum", expression=total, return_data=True))
            return out

        self.native_slos[slo.name] = cfn(
            self,
            f"{pascal(slo.name)}Slo",
            name=f"{self.config.lower_prefix}-{slo.name}",
            description=slo.description[:1024],
            request_based_sli=cfn.RequestBasedSliProperty(
                request_based_sli_metric=cfn.RequestBasedSliMetricProperty(
                    total_request_count_metric=queries(slo.total, "t"),
                    monitored_request_count_metric=cfn.MonitoredRequestCountMetricProperty(
                        bad_count_metric=queries(slo.bad, "b", slo.not_bad)
                    ),
                )
            ),
            goal=cfn.GoalProperty(
                attainment_goal=slo.objective,
                warning_threshold=50,
                interval=cfn.IntervalProperty(
                    rolling_interval=cfn.RollingIntervalProperty(
                        duration=BUDGET_PERIOD_DAYS, duration_unit="DAY"
                    )
                ),
            ),
            burn_rate_configurations=[
                cfn.BurnRateConfigurationProperty(look_back_window_minutes=minutes)
                for minutes in sorted({s // 60 for w in BURN_WINDOWS for s in (w.long_s, w.short_s)})
            ],
        )

    def _latency(self, slo: LatencySlo) -> None:
        metric = self._metric(slo.metric, slo.percentile, Duration.minutes(5))
        self._above_alarm(slo, slo.name, metric, slo.threshold_ms)
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title=f"{slo.name}: {slo.percentile} (ms)",
                left=[metric],
                left_annotations=[cw.HorizontalAnnotation(value=slo.threshold_ms, label="objective")],
                width=24,
            )
        )

    def _above_alarm(
        self, slo: LatencySlo | ThresholdSlo, name: str, metric: cw.IMetric, threshold: float
    ) -> None:
        """An SLO alarm: ``slo.breaching`` of ``slo.periods`` datapoints above ``threshold``."""
        alarm = cw.Alarm(
            self,
            pascal(name),
            alarm_name=f"{self.config.prefix}-slo-{name}",
            alarm_description=alarm_description(
                self.config, slo.name, f"[{slo.severity}] SLO {name}: {slo.description}."
            ),
            metric=metric,
            threshold=threshold,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=slo.periods,
            datapoints_to_alarm=slo.breaching,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        self._notify(alarm, slo.severity)
        self.alarms[slo.name].append(alarm)

    def _threshold(self, slo: ThresholdSlo) -> None:
        targets: dict[str, dict[str, str]] = {"": {}}
        for dim, value in slo.metric.dimensions.items():
            match = _EACH.match(value)
            if match:
                targets = {label: {dim: name} for label, name in self.resources.each[match.group(1)].items()}
        metrics: list[cw.IMetric] = []
        period = Duration.seconds(slo.period_s)
        for label, dims in targets.items():
            metric: cw.IMetric = self._metric(slo.metric, slo.statistic, period, **dims)
            if slo.per is not None:
                metric = cw.MathExpression(
                    expression="IF(c > 0, 100 * m / c, 0)",
                    using_metrics={"m": metric, "c": self._metric(slo.per, slo.statistic, period, **dims)},
                    period=period,
                    label=f"{slo.metric.name} (% of {slo.per.name})",
                )
            suffix = f"-{label.replace(':', '-')}" if label else ""
            self._above_alarm(slo, f"{slo.name}{suffix}", metric, slo.threshold)
            metrics.append(metric)
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title=f"{slo.name} ({slo.statistic})",
                left=metrics,
                left_annotations=[cw.HorizontalAnnotation(value=slo.threshold, label="threshold")],
                width=24,
            )
        )


def _span(seconds: int) -> str:
    """``300`` -> ``5 min``, ``21600`` -> ``6 h``, ``259200`` -> ``3 d``."""
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"
