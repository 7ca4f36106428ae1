"""Small helpers the stacks share (no resources of their own)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.catalog import QueueTrigger

_RETENTION: dict[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    """The CloudWatch Logs retention for ``days``: the smallest allowed value >= days."""
    for allowed in sorted(_RETENTION):
        if allowed >= days:
            return _RETENTION[allowed]
    return logs.RetentionDays.TEN_YEARS


def pascal(name: str) -> str:
    """``fan-out_queue`` -> ``FanOutQueue`` (construct ids from catalog names)."""
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def sns_managed_key(scope: Construct, construct_id: str) -> kms.IAlias:
    """The AWS managed SNS key: encryption at rest without a customer key to administer."""
    return kms.Alias.from_alias_name(scope, construct_id, "alias/aws/sns")


def encrypted_queue(
    scope: Construct,
    construct_id: str,
    *,
    retention_days: int = 4,
    visibility_timeout: Duration | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
    queue_name: str | None = None,
) -> sqs.Queue:
    """An SQS queue with TLS enforced and SSE with SQS-managed keys (EventBridge may send to it).

    ``queue_name``: a physical name from the catalog (dead-letter queues, so that runbooks and the
    local stack name the same queue); None lets CloudFormation generate one."""
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=queue_name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(retention_days),
        visibility_timeout=visibility_timeout,
        dead_letter_queue=dead_letter_queue,
    )


def trigger_queue(scope: Construct, trigger: QueueTrigger) -> tuple[sqs.Queue, sqs.Queue]:
    """A catalog queue trigger's queue and its redrive DLQ: ``(queue, dead-letter queue)``."""
    dlq = encrypted_queue(scope, f"{pascal(trigger.name)}Dlq", retention_days=14)
    queue = encrypted_queue(
        scope,
        f"{pascal(trigger.name)}Queue",
        visibility_timeout=Duration.seconds(trigger.visibility_timeout_s),
        dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=trigger.max_receive_count, queue=dlq),
    )
    return queue, dlq
