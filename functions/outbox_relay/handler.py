"""Scheduled sweep (every minute, reserved concurrency 1): send outbox rows that the
after-commit flush did not (bus down, writer crashed after COMMIT), and report the backlog.

Rows are claimed FOR UPDATE SKIP LOCKED, so the sweep and concurrent flushes never send the
same row twice. Metrics: OutboxSent, OutboxFailed, OutboxInvalid, OutboxPending,
OutboxOldestPendingSeconds (alarm on the last one: events are late). Also deletes published
rows and consumers' dedupe records past their retention (settings), in bounded batches.
"""

from __future__ import annotations

from chatflow.coldstart import pause_gc, resume_gc_after_first_call  # isort: skip

pause_gc()  # before the imports below: init runs without cyclic GC (chatflow.coldstart)

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chatflow.container import Container
from chatflow.observability import get_logger, get_metrics, traced_handler
from chatflow.settings import get_settings

logger = get_logger()
metrics = get_metrics()
container = Container(get_settings())


@resume_gc_after_first_call
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@traced_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = container.settings
    if not settings.event_bus_configured:
        # Local run without the EventBridge emulator: nothing to send to (docs/events.md).
        logger.info("outbox sweep skipped: no EventBridge endpoint configured", extra={"env": settings.env})
        metrics.add_metric(name="OutboxSweepSkipped", unit=MetricUnit.Count, value=1)
        return {"skipped": True, "claimed": 0, "sent": 0, "failed": 0, "invalid": 0}
    relay = container.sweep_relay
    result = relay.drain()
    # Housekeeping in small bounded batches: a minute's worth keeps up with any real load.
    kept = relay.housekeeping(
        outbox_retention=timedelta(days=settings.outbox_retention_days),
        processed_retention=timedelta(days=settings.processed_events_retention_days),
    )
    backlog = kept.backlog
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
        "purgedPublished": kept.purged_published,
        "purgedProcessedEvents": kept.purged_processed_events,
    }
    if result.failed or result.invalid:
        logger.warning("outbox sweep left rows unsent", extra={**summary, "errors": result.errors[:5]})
    else:
        logger.info("outbox sweep", extra=summary)
    return summary
