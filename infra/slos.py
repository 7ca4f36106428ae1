"""Chatflow's service level objectives: ONE list, from which infra/observability.py builds alarms.

Plain data (no aws_cdk import). Metric dimensions may name deployed resources through
placeholders that the observability stack resolves:
``{ws_api_id}`` ``{ws_stage}`` ``{http_api_id}`` ``{http_stage}`` ``{fn:<catalog name>}``
``{db_cluster}`` ``{db_proxy}`` ``{service}``, and -- expanding one SLO into one alarm per
resource -- ``{each:dlq}`` (every dead-letter queue), ``{each:cache_node}`` (every Valkey node)
and ``{each:async_fn}`` (every function an event rule or schedule invokes).

Three kinds:

- :class:`RatioSlo` -- an error budget (bad/total events over 30 days). Alarms are the SRE
  workbook's multi-window, multi-burn-rate set (:data:`BURN_WINDOWS`): page when the budget burns
  14.4x too fast over 1 h and 5 min (2% of the budget in an hour) or 6x over 6 h and 30 min (5% in
  six hours); ticket when it burns 1x over 3 days and 6 h (10% in three days). The short window
  makes an alarm reset quickly once the burn stops.
- :class:`LatencySlo` -- a percentile under a threshold; alarms when it is breached in
  ``breaching`` of the last ``periods`` 5-minute periods.
- :class:`ThresholdSlo` -- saturation and backlog signals (DLQ depth, Aurora ACU and replica lag,
  RDS Proxy connections, Valkey CPU/memory/evictions/connections, errors of asynchronous
  functions) alarming on a plain threshold.

Every SLO names its severity (``page``: someone is woken up; ``ticket``: the next working day)
and has a runbook, ``docs/runbooks/<name>.md``, that its alarms link to (tests/infra check both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["page", "ticket"]
SEVERITIES: tuple[Severity, ...] = ("page", "ticket")


@dataclass(frozen=True)
class MetricRef:
    namespace: str
    name: str
    dimensions: dict[str, str] = field(default_factory=dict)
    #: The statistic a RatioSlo counts events with (``SampleCount`` counts datapoints).
    stat: str = "Sum"

    @property
    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...], str]:
        return self.namespace, self.name, tuple(sorted(self.dimensions.items())), self.stat


@dataclass(frozen=True)
class BurnWindow:
    name: Literal["fast", "slow", "steady"]
    long_s: int
    short_s: int
    factor: float
    severity: Severity


BUDGET_PERIOD_DAYS = 30
BURN_WINDOWS: tuple[BurnWindow, ...] = (
    BurnWindow("fast", long_s=3600, short_s=300, factor=14.4, severity="page"),
    BurnWindow("slow", long_s=6 * 3600, short_s=1800, factor=6.0, severity="page"),
    BurnWindow("steady", long_s=3 * 86400, short_s=6 * 3600, factor=1.0, severity="ticket"),
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
    #: Subtracted from ``bad``: events a ``bad`` metric counts that are not failures (e.g. the
    #: refusals by design that API Gateway counts as integration errors of ``$connect``).
    not_bad: tuple[MetricRef, ...] = ()

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
    severity: Severity = "page"


@dataclass(frozen=True)
class ThresholdSlo:
    name: str
    description: str
    metric: MetricRef
    statistic: str  # "Maximum", "Average", "Sum", "p99"
    threshold: float
    period_s: int = 300
    periods: int = 3
    breaching: int = 3
    severity: Severity = "ticket"
    #: When set, the alarm watches ``100 * metric / per`` (a percentage of a capacity metric).
    per: MetricRef | None = None


Slo = RatioSlo | LatencySlo | ThresholdSlo

_GW = "AWS/ApiGateway"
_LAMBDA = "AWS/Lambda"
_CACHE = "AWS/ElastiCache"
_CHATFLOW = "Chatflow"  # POWERTOOLS_METRICS_NAMESPACE
_SERVICE = {"service": "{service}"}
_WS = {"ApiId": "{ws_api_id}", "Stage": "{ws_stage}"}
_HTTP = {"ApiId": "{http_api_id}", "Stage": "{http_stage}"}


def _fn(metric: str, function: str) -> MetricRef:
    return MetricRef(_LAMBDA, metric, {"FunctionName": "{fn:" + function + "}"})


def _cluster(metric: str) -> MetricRef:
    return MetricRef("AWS/RDS", metric, {"DBClusterIdentifier": "{db_cluster}"})


def _proxy(metric: str) -> MetricRef:
    return MetricRef("AWS/RDS", metric, {"ProxyName": "{db_proxy}"})


def _cache_node(metric: str) -> MetricRef:
    """``metric`` of every Valkey node (one alarm per node)."""
    return MetricRef(_CACHE, metric, {"CacheClusterId": "{each:cache_node}"})


def _invoked(function: str) -> tuple[MetricRef, MetricRef]:
    """What a function was asked to do: invocations plus throttled invocations (a throttle is a
    request that failed, so it belongs in the denominator as well as in the numerator)."""
    return _fn("Invocations", function), _fn("Throttles", function)


def _failed(function: str) -> tuple[MetricRef, MetricRef]:
    return _fn("Errors", function), _fn("Throttles", function)


SLOS: tuple[Slo, ...] = (
    RatioSlo(
        "availability",
        "99.9% of HTTP requests and of WebSocket handshakes and client frames succeed (no 5xx, no "
        "integration or execution error; a refused handshake is not a failure)",
        objective=99.9,
        bad=(
            MetricRef(_GW, "5xx", _HTTP),
            MetricRef(_GW, "IntegrationError", _WS),
            MetricRef(_GW, "ExecutionError", _WS),
        ),
        # ws_connect answers 403 (banned) / 429 (connection limit) by design; API Gateway counts
        # them as integration errors, the function counts them in its own metrics.
        not_bad=(
            MetricRef(_CHATFLOW, "ConnectRefusedAuth", _SERVICE),
            MetricRef(_CHATFLOW, "ConnectRefusedLimit", _SERVICE),
        ),
        total=(
            MetricRef(_GW, "Count", _HTTP),
            # Client-initiated WebSocket traffic: every handshake, frame and disconnect API Gateway
            # hands to an integration. MessageCount would also count every frame sent TO clients,
            # so a fan-out to 1,000 members would dilute the errors 1,000 times.
            MetricRef(_GW, "IntegrationLatency", _WS, stat="SampleCount"),
            # Execution errors may never reach the integration: counted in both.
            MetricRef(_GW, "ExecutionError", _WS),
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
        "99.9% of chat actions are handled without a function error or throttle",
        objective=99.9,
        bad=_failed("ws_messages"),
        total=_invoked("ws_messages"),
    ),
    RatioSlo(
        "fanout-delivery",
        "99.9% of asynchronous fan-out batches are delivered without an error or throttle",
        objective=99.9,
        bad=_failed("fanout"),
        total=_invoked("fanout"),
    ),
    RatioSlo(
        "authorizer-errors",
        "99.95% of authorizer invocations finish without an error or throttle (a denial is not an error)",
        objective=99.95,
        bad=_failed("authorizer"),
        total=_invoked("authorizer"),
    ),
    ThresholdSlo(
        "async-function-errors",
        "An asynchronous function (event consumer or scheduled sweep) keeps failing: its events are "
        "retried, then parked in its DLQ",
        metric=MetricRef(_LAMBDA, "Errors", {"FunctionName": "{each:async_fn}"}),
        statistic="Sum",
        threshold=0,
    ),
    ThresholdSlo(
        "dlq-depth",
        "Every dead-letter queue stays empty: one message is an event or batch parked until redriven",
        metric=MetricRef("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": "{each:dlq}"}),
        statistic="Maximum",
        threshold=0,
        periods=1,
        breaching=1,
    ),
    ThresholdSlo(
        "aurora-saturation",
        "Aurora Serverless v2 capacity below 80% of its maximum ACU",
        metric=_cluster("ACUUtilization"),
        statistic="Average",
        threshold=80,
    ),
    ThresholdSlo(
        "aurora-replica-lag",
        "Aurora readers lag the writer by under 2 s (reads through the reader endpoint see older data)",
        metric=_cluster("AuroraReplicaLagMaximum"),
        statistic="Maximum",
        threshold=2000,
    ),
    ThresholdSlo(
        "db-proxy-connections",
        "RDS Proxy uses under 80% of the database connections it may open",
        metric=_proxy("DatabaseConnections"),
        per=_proxy("MaxDatabaseConnectionsAllowed"),
        statistic="Maximum",
        threshold=80,
    ),
    ThresholdSlo(
        "db-proxy-borrow-latency",
        "RDS Proxy hands out a database connection within 100 ms (p99, microseconds): above, "
        "requests queue for connections",
        metric=_proxy("DatabaseConnectionsBorrowLatency"),
        statistic="p99",
        threshold=100_000,
        severity="page",
    ),
    ThresholdSlo(
        "redis-cpu-saturation",
        "Valkey engine CPU below 75% on every node",
        metric=_cache_node("EngineCPUUtilization"),
        statistic="Average",
        threshold=75,
    ),
    ThresholdSlo(
        "redis-memory-saturation",
        "Valkey memory below 80% of maxmemory on every node (noeviction: at 100% writes fail, so "
        "connects, subscriptions and rate limits fail)",
        metric=_cache_node("DatabaseMemoryUsagePercentage"),
        statistic="Maximum",
        threshold=80,
        severity="page",
    ),
    ThresholdSlo(
        "redis-evictions",
        "Valkey never evicts a key (noeviction): an eviction drops connection registry, "
        "subscription, presence or rate-limit state and so deliveries",
        metric=_cache_node("Evictions"),
        statistic="Sum",
        threshold=0,
        period_s=60,
        periods=1,
        breaching=1,
        severity="page",
    ),
    ThresholdSlo(
        "redis-connections",
        "Valkey client connections stay under 50,000 per node (the engine's limit is 65,000)",
        metric=_cache_node("CurrConnections"),
        statistic="Maximum",
        threshold=50_000,
    ),
)


def slo(name: str) -> Slo:
    for item in SLOS:
        if item.name == name:
            return item
    raise KeyError(name)
