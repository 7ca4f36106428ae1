"""Observability: the alarm topic, one set of alarms per SLO (infra/slos.py), and a dashboard.

- RatioSlo -> for each burn window (fast 1 h/5 min at 14.4x, slow 6 h/30 min at 6x): a long- and a
  short-window alarm on the error ratio (CloudWatch metric math), joined by a composite alarm
  (long AND short) that notifies. Only the composites notify, so one incident sends one message.
- LatencySlo -> a percentile alarm; ThresholdSlo -> one alarm per resource it expands to.
- Dashboard: per SLO its SLI, and for error budgets the budget left over the last 30 days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_applicationsignals as applicationsignals
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.common import pascal, sns_managed_key
from infra.config import EnvConfig
from infra.slos import BUDGET_PERIOD_DAYS, BURN_WINDOWS, SLOS, LatencySlo, MetricRef, RatioSlo, ThresholdSlo

_EACH = re.compile(r"^\{each:([a-z_]+)\}$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+(?::[a-z_]+)?)\}")


@dataclass(frozen=True)
class MonitoredResources:
    """Names the SLO placeholders resolve to (tokens from the other stacks)."""

    refs: dict[str, str]  # "ws_api_id" -> token, "fn:ws_messages" -> function name, ...
    each: dict[str, dict[str, str]]  # "dlq" -> {label: queue name}, "cache_node" -> {...}


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
        self.alarm_topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"Chatflow {config.env} alarms",
            enforce_ssl=True,
            master_key=sns_managed_key(self, "AlarmTopicKey"),
        )
        if config.alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self.action = cw_actions.SnsAction(self.alarm_topic)
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
        bad, total = [], []
        for i, ref in enumerate(slo.bad):
            using[f"b{i}"] = self._metric(ref, "Sum", period)
            bad.append(f"FILL(b{i}, 0)")
        for i, ref in enumerate(slo.total):
            using[f"t{i}"] = self._metric(ref, "Sum", period)
            total.append(f"FILL(t{i}, 0)")
        b, t = " + ".join(bad), " + ".join(total)
        return cw.MathExpression(
            expression=f"IF(({t}) > 0, ({b}) / ({t}), 0)",
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
                    alarm_description=(
                        f"SLO {slo.name} ({slo.objective}%): error ratio over {seconds // 60} min above "
                        f"{window.factor}x the budget"
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
                alarm_description=(
                    f"[{window.severity}] SLO {slo.name}: error budget burning {window.factor}x too fast "
                    f"({window.long_s // 3600} h and {window.short_s // 60} min windows). {slo.description}"
                ),
                alarm_rule=cw.AlarmRule.all_of(*parts),
            )
            composite.add_alarm_action(self.action)
            self.alarms[slo.name].append(composite)

        budget_days = Duration.days(BUDGET_PERIOD_DAYS)
        remaining = cw.MathExpression(
            expression=f"100 * (1 - e / {slo.budget})",
            using_metrics={"e": self._ratio_expression(slo, budget_days)},
            period=budget_days,
            label=f"{slo.name}: error budget left (%)",
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title=f"{slo.name} ({slo.objective}%) error ratio",
                left=[self._ratio_expression(slo, Duration.minutes(5))],
                left_annotations=[
                    cw.HorizontalAnnotation(value=slo.budget, label="budget"),
                    cw.HorizontalAnnotation(value=14.4 * slo.budget, label="fast burn"),
                ],
                width=16,
            ),
            cw.SingleValueWidget(
                title=f"{slo.name}: budget left, {BUDGET_PERIOD_DAYS} d", metrics=[remaining], width=8
            ),
        )

    def _native_slo(self, slo: RatioSlo) -> None:
        """The same error budget as an Application Signals SLO (request-based: bad / total)."""
        cfn = applicationsignals.CfnServiceLevelObjective

        def queries(
            refs: tuple[MetricRef, ...], prefix: str
        ) -> list[applicationsignals.CfnServiceLevelObjective.MetricDataQueryProperty]:
            out = [
                cfn.MetricDataQueryProperty(
                    id=f"{prefix}{i}",
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
                        stat="Sum",
                    ),
                )
                for i, ref in enumerate(refs)
            ]
            total = " + ".join(f"FILL({q.id}, 0)" for q in out)
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
                        bad_count_metric=queries(slo.bad, "b")
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
                cfn.BurnRateConfigurationProperty(look_back_window_minutes=seconds // 60)
                for window in BURN_WINDOWS
                for seconds in (window.long_s, window.short_s)
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
            alarm_description=f"SLO {name}: {slo.description}",
            metric=metric,
            threshold=threshold,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=slo.periods,
            datapoints_to_alarm=slo.breaching,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self.action)
        self.alarms[slo.name].append(alarm)

    def _threshold(self, slo: ThresholdSlo) -> None:
        targets: dict[str, dict[str, str]] = {"": {}}
        for dim, value in slo.metric.dimensions.items():
            match = _EACH.match(value)
            if match:
                targets = {label: {dim: name} for label, name in self.resources.each[match.group(1)].items()}
        metrics: list[cw.IMetric] = []
        for label, dims in targets.items():
            metric = self._metric(slo.metric, slo.statistic, Duration.seconds(slo.period_s), **dims)
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
