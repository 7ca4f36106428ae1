"""Chatflow's service level objectives: ONE list, from which infra/observability.py builds alarms.

Plain data (no aws_cdk import). Metric dimensions may name deployed resources through
placeholders that the observability stack resolves:
``{ws_api_id}`` ``{ws_stage}`` ``{http_api_id}`` ``{http_stage}`` ``{fn:<catalog name>}``
``{db_cluster}``, and -- expanding one SLO into one alarm per resource -- ``{each:dlq}`` (every
dead-letter queue) and ``{each:cache_node}`` (every Valkey node).

Three kinds:

- :class:`RatioSlo` -- an error budget (good/total events over 30 days). Alarms are the SRE
  workbook's multi-window, multi-burn-rate pair (:data:`BURN_WINDOWS`): page when the budget burns
  14.4x too fast over both 1 h and 5 min (2% of a 30-day budget in an hour), ticket when it burns
  6x over both 6 h and 30 min (5% in six hours). The short window makes the alarm reset quickly
  once the burn stops.
- :class:`LatencySlo` -- a percentile under a threshold; alarms when it is breached in
  ``breaching`` of the last ``periods`` 5-minute periods.
- :class:`ThresholdSlo` -- saturation and backlog signals (DLQ depth, Aurora ACU, Valkey CPU and
  memory) alarming on a plain threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class MetricRef:
    namespace: str
    name: str
    dimensions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BurnWindow:
    name: Literal["fast", "slow"]
    long_s: int
    short_s: int
    factor: float
    severity: Literal["page", "ticket"]


BUDGET_PERIOD_DAYS = 30
BURN_WINDOWS: tuple[BurnWindow, ...] = (
    BurnWindow("fast", long_s=3600, short_s=300, factor=14.4, severity="page"),
    BurnWindow("slow", long_s=6 * 3600, short_s=1800, factor=6.0, severity="ticket"),
)


@dataclass(frozen=True)
class RatioSlo:
    name: str
    description: str
    #: Percent of events that must be good, e.g. 99.9.
    objective: float
    #: Summed: events that count against the budget.
    bad: tuple[MetricRef, ...]
    #: Summed: all events.
    total: tuple[MetricRef, ...]

    @property
    def budget(self) -> float:
        """The error budget as a fraction (99.9% -> 0.001)."""
        return round(1 - self.objective / 100, 10)


@dataclass(frozen=True)
class LatencySlo:
    name: str
    description: str
    metric: MetricRef
    percentile: str  # "p99"
    threshold_ms: float
    periods: int = 5
    breaching: int = 3


@dataclass(frozen=True)
class ThresholdSlo:
    name: str
    description: str
    metric: MetricRef
    statistic: str  # "Maximum", "Average"
    threshold: float
    period_s: int = 300
    periods: int = 3
    breaching: int = 3


Slo = RatioSlo | LatencySlo | ThresholdSlo

_GW = "AWS/ApiGateway"
_LAMBDA = "AWS/Lambda"
_WS = {"ApiId": "{ws_api_id}", "Stage": "{ws_stage}"}
_HTTP = {"ApiId": "{http_api_id}", "Stage": "{http_stage}"}


def _fn(metric: str, function: str) -> MetricRef:
    return MetricRef(_LAMBDA, metric, {"FunctionName": "{fn:" + function + "}"})


SLOS: tuple[Slo, ...] = (
    RatioSlo(
        "availability",
        "99.9% of HTTP requests and WebSocket messages/connects succeed (no 5xx, no integration "
        "or execution error)",
        objective=99.9,
        bad=(
            MetricRef(_GW, "5xx", _HTTP),
            MetricRef(_GW, "IntegrationError", _WS),
            MetricRef(_GW, "ExecutionError", _WS),
        ),
        total=(
            MetricRef(_GW, "Count", _HTTP),
            MetricRef(_GW, "MessageCount", _WS),
            MetricRef(_GW, "ConnectCount", _WS),
        ),
    ),
    RatioSlo(
        "http-5xx",
        "99.5% of HTTP API requests answer without a 5xx",
        objective=99.5,
        bad=(MetricRef(_GW, "5xx", _HTTP),),
        total=(MetricRef(_GW, "Count", _HTTP),),
    ),
    LatencySlo(
        "http-latency",
        "HTTP API p99 latency under 800 ms",
        metric=MetricRef(_GW, "Latency", _HTTP),
        percentile="p99",
        threshold_ms=800,
    ),
    LatencySlo(
        "ws-message-latency",
        "WebSocket message handling (ws_messages) p99 under 500 ms",
        metric=_fn("Duration", "ws_messages"),
        percentile="p99",
        threshold_ms=500,
    ),
    RatioSlo(
        "ws-message-errors",
        "99.9% of chat actions are handled without a function error",
        objective=99.9,
        bad=(_fn("Errors", "ws_messages"), _fn("Throttles", "ws_messages")),
        total=(_fn("Invocations", "ws_messages"),),
    ),
    RatioSlo(
        "fanout-delivery",
        "99.9% of asynchronous fan-out batches are delivered without an error",
        objective=99.9,
        bad=(_fn("Errors", "fanout"), _fn("Throttles", "fanout")),
        total=(_fn("Invocations", "fanout"),),
    ),
    RatioSlo(
        "authorizer-errors",
        "99.95% of authorizer invocations finish without an error (a denial is not an error)",
        objective=99.95,
        bad=(_fn("Errors", "authorizer"), _fn("Throttles", "authorizer")),
        total=(_fn("Invocations", "authorizer"),),
    ),
    ThresholdSlo(
        "dlq-depth",
        "Every dead-letter queue stays empty: one message is an event or batch lost until redriven",
        metric=MetricRef("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": "{each:dlq}"}),
        statistic="Maximum",
        threshold=0,
        periods=1,
        breaching=1,
    ),
    ThresholdSlo(
        "aurora-saturation",
        "Aurora Serverless v2 capacity below 80% of its maximum ACU",
        metric=MetricRef("AWS/RDS", "ACUUtilization", {"DBClusterIdentifier": "{db_cluster}"}),
        statistic="Average",
        threshold=80,
    ),
    ThresholdSlo(
        "redis-cpu-saturation",
        "Valkey engine CPU below 75% on every node",
        metric=MetricRef("AWS/ElastiCache", "EngineCPUUtilization", {"CacheClusterId": "{each:cache_node}"}),
        statistic="Average",
        threshold=75,
    ),
    ThresholdSlo(
        "redis-memory-saturation",
        "Valkey memory below 80% of maxmemory on every node (volatile-lru evicts TTL keys above)",
        metric=MetricRef(
            "AWS/ElastiCache", "DatabaseMemoryUsagePercentage", {"CacheClusterId": "{each:cache_node}"}
        ),
        statistic="Maximum",
        threshold=80,
    ),
)


def slo(name: str) -> Slo:
    for item in SLOS:
        if item.name == name:
            return item
    raise KeyError(name)
