"""Scheduled sweep (every minute, reserved concurrency 1): send outbox rows that the
after-commit flush did not (bus down, writer crashed after COMMIT), and report the backlog.

Rows are claimed FOR UPDATE SKIP LOCKED, so the sweep and concurrent flushes never send the
same row twice. Metrics: OutboxSent, OutboxFailed, OutboxInvalid, OutboxPending,
OutboxOldestPendingSeconds (alarm on the last one: events are late). Also deletes published
rows and consumers' dedupe records past their retention (settings), in bounded batches.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chatflow.adapters.eventbridge import EventBridgePublisher
from chatflow.adapters.postgres import outbox
from chatflow.adapters.postgres.consumers import purge_processed
from chatflow.adapters.postgres.pool import writer
from chatflow.events.relay import OutboxRelay, bus_configured
from chatflow.observability import get_logger, get_metrics, traced_handler
from chatflow.settings import get_settings

logger = get_logger()
metrics = get_metrics()
_relay: OutboxRelay | None = None


def _sweeper() -> OutboxRelay:
    global _relay
    if _relay is None:
        # The sweep can afford patience: more in-call retries than the after-commit flush.
        _relay = OutboxRelay(publisher=EventBridgePublisher(max_attempts=4, base_delay_s=0.2))
    return _relay


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@traced_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = get_settings()
    if not bus_configured():
        # Local run without the EventBridge emulator: nothing to send to (docs/events.md).
        logger.info("outbox sweep skipped: no EventBridge endpoint configured", extra={"env": settings.env})
        metrics.add_metric(name="OutboxSweepSkipped", unit=MetricUnit.Count, value=1)
        return {"skipped": True, "claimed": 0, "sent": 0, "failed": 0, "invalid": 0}
    result = _sweeper().drain()
    with writer().connection() as conn:
        backlog = outbox.stats(conn)
        # Housekeeping in small bounded batches: a minute's worth keeps up with any real load.
        purged = outbox.purge_published(conn, timedelta(days=settings.outbox_retention_days))
        forgotten = purge_processed(conn, timedelta(days=settings.processed_events_retention_days))
    metrics.add_metric(name="OutboxSent", unit=MetricUnit.Count, value=result.sent)
    metrics.add_metric(name="OutboxFailed", unit=MetricUnit.Count, value=result.failed)
    metrics.add_metric(name="OutboxInvalid", unit=MetricUnit.Count, value=result.invalid)
    metrics.add_metric(name="OutboxPending", unit=MetricUnit.Count, value=backlog.pending)
    metrics.add_metric(
        name="OutboxOldestPendingSeconds", unit=MetricUnit.Seconds, value=backlog.oldest_pending_age_s or 0.0
    )
    summary = {
        "claimed": result.claimed,
        "sent": result.sent,
        "failed": result.failed,
        "invalid": result.invalid,
        "pending": backlog.pending,
        "oldestPendingSeconds": backlog.oldest_pending_age_s,
        "purgedPublished": purged,
        "purgedProcessedEvents": forgotten,
    }
    if result.failed or result.invalid:
        logger.warning("outbox sweep left rows unsent", extra={**summary, "errors": result.errors[:5]})
    else:
        logger.info("outbox sweep", extra=summary)
    return summary
