"""EventBridge target (rule ``analytics-all-chat-events``): messages per room per hour, daily
active users and daily counters (connections opened, ...) in Postgres, plus EMF metrics.

Idempotent: the counters and the (consumer, event_id) record commit together; metrics are
emitted only for first deliveries, so CloudWatch does not double-count either.
"""

from __future__ import annotations

from chatflow.coldstart import pause_gc, resume_gc_after_first_call  # isort: skip

pause_gc()  # before the imports below: init runs without cyclic GC (chatflow.coldstart)

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chatflow.container import Container
from chatflow.events.consumer import receive
from chatflow.observability import get_logger, get_metrics, traced_handler
from chatflow.settings import get_settings

logger = get_logger()
metrics = get_metrics()
container = Container(get_settings())

#: EMF metric per daily counter (CloudWatch names are CamelCase).
_METRIC_OF = {
    "messages_created": "MessagesCreated",
    "connections_opened": "ConnectionsOpened",
    "rooms_created": "RoomsCreated",
    "members_joined": "MembersJoined",
    "users_banned": "UsersBanned",
}


@resume_gc_after_first_call
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@traced_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    received = receive(event, logger, metrics, expected_source=container.settings.event_source)
    delta, applied = container.analytics.handle_event(received.event)
    result = {
        "eventId": str(received.event.event_id),
        "detailType": received.detail_type,
        "duplicate": applied.duplicate,
        "counter": delta.counter,
        "newActiveUser": applied.new_active_user,
    }
    if applied.duplicate:
        metrics.add_metric(name="DuplicateEventsIgnored", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="EventsCounted", unit=MetricUnit.Count, value=1)
        metric = _METRIC_OF.get(delta.counter)
        if metric:
            metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        if applied.new_active_user:
            metrics.add_metric(name="DailyActiveUsers", unit=MetricUnit.Count, value=1)
    logger.info("event counted", extra=result)
    return result
