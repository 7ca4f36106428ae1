"""ConnectionNotifier over the API Gateway Management API (botocore ``apigatewaymanagementapi`` client).

Fan-out is concurrent: one botocore client (thread-safe, its HTTP pool sized to the workers, so
connections are reused) and a bounded ThreadPoolExecutor (``settings.fanout_max_workers``).
Concurrency pays against real network latency (~20 ms in-region); on loopback botocore's ~0.8
ms of CPU per call is the bound (docs/performance.md).

Per recipient:

* 410 ``GoneException`` -> the RECIPIENT's connection is stale; it is reported in
  :attr:`DeliveryReport.gone` and the caller removes exactly that connection from the registry.
  ``GoneException`` subclasses ``ClientError``, so it is caught first.
* Throttling / 5xx / network errors -> retried with exponential backoff and jitter, then logged
  and counted (metric ``FanoutFailed``) and reported in :attr:`DeliveryReport.failed`.
* 403 / 413 and other client errors -> not retried (retrying cannot help), counted as failed.

The client is created lazily (cold start: botocore is imported on first use), with
``endpoint_url = settings.ws_management_endpoint``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from chatflow.domain.realtime_models import DeliveryReport, Target
from chatflow.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient

logger = logging.getLogger(__name__)

_RETRYABLE_CODES = frozenset(
    {
        "LimitExceededException",
        "ThrottlingException",
        "TooManyRequestsException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


class Outcome(StrEnum):
    DELIVERED = "delivered"
    GONE = "gone"
    FAILED = "failed"


#: Metric hook: (metric name, count). Default: Powertools Metrics (flushed by the handler's
#: ``log_metrics``); tests and benchmarks may pass their own.
MetricHook = Callable[[str, int], None]


def _powertools_metric(name: str, count: int) -> None:
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    Metrics().add_metric(name=name, unit=MetricUnit.Count, value=count)


class ApiGatewayNotifier:
    """Posts frames to connections and closes connections (bans)."""

    def __init__(
        self,
        settings: Settings,
        *,
        endpoint_url: str | None = None,
        max_workers: int | None = None,
        max_attempts: int = 3,
        backoff_base_s: float = 0.05,
        metric: MetricHook | None = None,
    ) -> None:
        self._settings = settings
        self._endpoint_url = endpoint_url or self._settings.ws_management_endpoint
        self._max_workers = max(1, max_workers or self._settings.fanout_max_workers)
        self._max_attempts = max(1, max_attempts)
        self._backoff_base_s = backoff_base_s
        self._metric = metric or _powertools_metric
        self._lock = threading.Lock()
        self._client: ApiGatewayManagementApiClient | None = None
        self._executor: ThreadPoolExecutor | None = None

    # --- lazily created resources ------------------------------------------------------------

    @property
    def client(self) -> ApiGatewayManagementApiClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> ApiGatewayManagementApiClient:
        if not self._endpoint_url:
            raise RuntimeError("WS_MANAGEMENT_ENDPOINT is not configured")
        # botocore directly: boto3 would only add its session layer and s3transfer (tens of ms of
        # imports at cold start) on top of the very same botocore client.
        import botocore.session
        from botocore.config import Config

        config = Config(
            # One pooled HTTP connection per worker: connections are reused across posts.
            max_pool_connections=self._max_workers,
            # We retry ourselves (410 must never be retried; others with our backoff + metric).
            retries={"total_max_attempts": 1},
            connect_timeout=2,
            read_timeout=5,
            tcp_keepalive=True,
        )
        client = botocore.session.get_session().create_client(
            "apigatewaymanagementapi",
            endpoint_url=self._endpoint_url,
            region_name=self._settings.aws_region,
            config=config,
        )
        return cast("ApiGatewayManagementApiClient", client)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="fanout")
        return self._executor

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    # --- sending -----------------------------------------------------------------------------

    def send(self, targets: Sequence[Target], data: bytes) -> DeliveryReport:
        """Post ``data`` to every target concurrently (bounded); never raises per recipient."""
        report = DeliveryReport()
        if not targets:
            return report
        if len(targets) == 1:
            outcomes: Iterable[Outcome] = [self._post(targets[0], data)]
        else:
            outcomes = self._pool().map(lambda t: self._post(t, data), targets)
        for target, outcome in zip(targets, outcomes, strict=True):
            if outcome is Outcome.DELIVERED:
                report.delivered.append(target)
            elif outcome is Outcome.GONE:
                report.gone.append(target)
            else:
                report.failed.append(target)
        if report.failed:
            self._metric("FanoutFailed", len(report.failed))
        if report.gone:
            self._metric("FanoutGone", len(report.gone))
        return report

    def _post(self, target: Target, data: bytes) -> Outcome:
        client = self.client
        return self._call(
            lambda: client.post_to_connection(ConnectionId=target.connection_id, Data=data),
            target,
            "post",
        )

    def close_connections(self, connection_ids: Sequence[str]) -> int:
        """DeleteConnection for each id (bans); returns how many were open. 410 = already closed."""
        client = self.client

        def close(cid: str) -> Outcome:
            return self._call(lambda: client.delete_connection(ConnectionId=cid), cid, "delete")

        if len(connection_ids) <= 1:
            outcomes = [close(c) for c in connection_ids]
        else:
            outcomes = list(self._pool().map(close, connection_ids))
        return sum(1 for o in outcomes if o is Outcome.DELIVERED)

    def _call(self, call: Callable[[], Any], target: object, op: str) -> Outcome:
        from botocore.exceptions import BotoCoreError, ClientError

        gone = self.client.exceptions.GoneException
        for attempt in range(1, self._max_attempts + 1):
            try:
                call()
                return Outcome.DELIVERED
            except gone:  # before ClientError: GoneException IS a ClientError
                return Outcome.GONE
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                retryable = code in _RETRYABLE_CODES or status == 429 or status >= 500
                if not retryable or attempt == self._max_attempts:
                    logger.warning(
                        "fan-out %s failed", op, extra={"target": str(target), "code": code, "status": status}
                    )
                    return Outcome.FAILED
            except BotoCoreError as exc:  # connection reset, timeouts
                if attempt == self._max_attempts:
                    logger.warning("fan-out %s failed", op, extra={"target": str(target), "error": repr(exc)})
                    return Outcome.FAILED
            # Full jitter: spreads retries of many workers hitting the same throttle.
            time.sleep(random.uniform(0, self._backoff_base_s * 2**attempt))  # noqa: S311
        return Outcome.FAILED
