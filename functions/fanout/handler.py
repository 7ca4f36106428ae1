"""Asynchronous fan-out for large rooms: SQS consumer (jobs from chatflow.adapters.sqs_fanout).

Each record is one job (a frame + a chunk of member ids). Partial batch failures through
Powertools' BatchProcessor: only the records that raised are retried (then the queue's DLQ).
A record fails only when the infrastructure does (Redis, ROOMS' cache); individual recipients
that fail after retries are logged and counted by the notifier, 410s are cleaned up.
"""

from __future__ import annotations

from chatflow.coldstart import pause_gc, resume_gc_after_first_call  # isort: skip

pause_gc()  # before the imports below: init runs without cyclic GC (chatflow.coldstart)

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chatflow.adapters.sqs_fanout import FanoutJob
from chatflow.container import Container
from chatflow.errors import InvalidInput
from chatflow.settings import get_settings

logger = Logger()
metrics = Metrics()
container = Container(get_settings())
container.prime(chat=False)
processor = BatchProcessor(event_type=EventType.SQS)


def deliver(record: SQSRecord) -> None:
    try:
        job = FanoutJob.from_json(record.body)
    except InvalidInput as exc:
        # A malformed job never heals: drop it (logged) rather than loop through retries.
        logger.error(
            "dropping malformed fan-out job", extra={"message_id": record.message_id, "error": exc.message}
        )
        metrics.add_metric(name="FanoutJobMalformed", unit=MetricUnit.Count, value=1)
        return
    service = container.realtime
    if job.presence is not None:  # a presence transition for a large audience
        p = job.presence
        report = service.deliver_presence(p.user_id, p.version, p.online, job.frame, job.member_ids)
        metrics.add_metric(name="FanoutPresenceDelivered", unit=MetricUnit.Count, value=len(report.delivered))
        return
    assert job.room_id is not None  # from_json: a job names a room or a presence transition
    current = service.rooms.members_among(job.room_id, job.member_ids)  # one round trip
    recipients = [m for m in job.member_ids if m in current]
    report = service.deliver_to_users(recipients, job.frame, exclude_connection=job.exclude_connection)
    metrics.add_metric(name="FanoutDelivered", unit=MetricUnit.Count, value=len(report.delivered))
    logger.info(
        "fan-out job done",
        extra={
            "room_id": str(job.room_id),
            "delivered": len(report.delivered),
            "gone": len(report.gone),
            "failed": len(report.failed),
        },
    )


@resume_gc_after_first_call
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=deliver, processor=processor, context=context)
