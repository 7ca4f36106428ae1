"""EventBridge target (rule ``notify-on-message-and-join``): in-app notifications for offline
members -- unread counters per room, mentions, "added you to a room" -- and the hand-off to the
delivery channel (SNS topic; a channel that is not configured only logs).

Idempotent: the effect and the (consumer, event_id) record commit together, so retries, DLQ
redrives and archive replays change nothing twice. An invalid event or a failed hand-off raises:
the delivery is retried and finally dead-lettered (docs/events.md).
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chatflow.adapters.postgres.notifications import PostgresNotificationRepository
from chatflow.adapters.redis_realtime import online_user_ids
from chatflow.adapters.sns_delivery import get_channel
from chatflow.domain import notifications
from chatflow.events.consumer import receive
from chatflow.observability import get_logger, get_metrics, traced_handler

logger = get_logger()
metrics = get_metrics()


@functools.cache
def _repository() -> PostgresNotificationRepository:
    return PostgresNotificationRepository()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@traced_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    received = receive(event, logger, metrics)
    try:
        outcome = notifications.handle_event(received.event, _repository(), online_user_ids, get_channel())
    except notifications.DeliveryFailed as exc:
        metrics.add_metric(
            name="NotificationDeliveryFailures", unit=MetricUnit.Count, value=exc.outcome.failed
        )
        logger.warning(
            "notification hand-off failed; the delivery will be retried", extra=exc.outcome.to_dict()
        )
        raise
    if outcome.duplicate:
        metrics.add_metric(name="DuplicateEventsIgnored", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="NotificationsCreated", unit=MetricUnit.Count, value=outcome.created)
    metrics.add_metric(name="UnreadCountersBumped", unit=MetricUnit.Count, value=outcome.counters)
    metrics.add_metric(name="NotificationsDelivered", unit=MetricUnit.Count, value=outcome.delivered)
    logger.info("event processed", extra=outcome.to_dict())
    return outcome.to_dict()
