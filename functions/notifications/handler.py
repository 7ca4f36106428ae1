"""EventBridge target (rule ``notify-on-message-and-join``): in-app notifications for offline
members -- unread counters per room, mentions, "added you to a room" -- and the hand-off to the
delivery channel (SNS topic; a channel that is not configured only logs).

Idempotent: the effect and the (consumer, event_id) record commit together, so retries, DLQ
redrives and archive replays change nothing twice. An invalid event or a failed hand-off raises:
the delivery is retried and finally dead-lettered (docs/events.md).
"""

from __future__ import annotations

from chatflow.coldstart import pause_gc, resume_gc_after_first_call  # isort: skip

pause_gc()  # before the imports below: init runs without cyclic GC (chatflow.coldstart)

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chatflow.container import Container
from chatflow.domain.notifications import DeliveryFailed
from chatflow.events.consumer import receive
from chatflow.observability import get_logger, get_metrics, traced_handler
from chatflow.settings import get_settings
from chatflow.wire import notification_outcome_to_dict

logger = get_logger()
metrics = get_metrics()
container = Container(get_settings())


@resume_gc_after_first_call
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@traced_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    received = receive(event, logger, metrics, expected_source=container.settings.event_source)
    try:
        outcome = container.notifications.handle_event(received.event)
    except DeliveryFailed as exc:
        metrics.add_metric(
            name="NotificationDeliveryFailures", unit=MetricUnit.Count, value=exc.outcome.failed
        )
        logger.warning(
            "notification hand-off failed; the delivery will be retried",
            extra=notification_outcome_to_dict(exc.outcome),
        )
        raise
    if outcome.duplicate:
        metrics.add_metric(name="DuplicateEventsIgnored", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="NotificationsCreated", unit=MetricUnit.Count, value=outcome.created)
    metrics.add_metric(name="UnreadCountersBumped", unit=MetricUnit.Count, value=outcome.counters)
    metrics.add_metric(name="NotificationsDelivered", unit=MetricUnit.Count, value=outcome.delivered)
    result = notification_outcome_to_dict(outcome)
    logger.info("event processed", extra=result)
    return result
