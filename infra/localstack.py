"""``-c profile=localstack-community``: what LocalStack's community edition can deploy.

Community edition 2026.3 (measured, docs/localstack.md): EventBridge (bus, rules, SQS targets;
RetryPolicy and DeadLetterConfig are accepted but not enforced), SQS (redrive DLQs), SNS, KMS,
CloudWatch alarms (really evaluated), Logs, Secrets Manager, CloudFormation. NOT available: API
Gateway v2 and its Management API, RDS, ElastiCache (paid edition), Lambda (needs Docker),
EventBridge archives through CloudFormation (skipped).

So this one stack deploys the event backbone with the SAME catalog rules and retry/DLQ settings as
AWS, delivering to one SQS "inbox" queue per target function instead of Lambda, plus the fan-out
queue, the notification topic, the JWT secret, the DLQ-depth alarms routed like in AWS (ticket
topic on the alarm KMS key) and an "alarm inbox" queue subscribed to that topic -- enough to test
event routing, redrive and alarm delivery against LocalStack (scripts/localstack-smoke.py).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import catalog
from infra.common import encrypted_queue, pascal, trigger_queue
from infra.config import EnvConfig
from infra.events import add_catalog_rules
from infra.functions import bus_name
from infra.observability import alarm_description, alarm_topic, alarm_topic_key


class LocalStackCommunityStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        bus = events.EventBus(self, "Bus", event_bus_name=bus_name(config))
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        self.inboxes: dict[str, sqs.Queue] = {}

        def inbox_target(
            function: str, dlq: sqs.Queue, attempts: int, max_age: Duration
        ) -> events.IRuleTarget:
            # One inbox queue per target function stands in for the Lambda function.
            inbox = self.inboxes.get(function) or encrypted_queue(self, f"{pascal(function)}Inbox")
            self.inboxes[function] = inbox
            return targets.SqsQueue(
                inbox, dead_letter_queue=dlq, retry_attempts=attempts, max_event_age=max_age
            )

        add_catalog_rules(self, bus, inbox_target, self.dead_letter_queues, name_prefix=config.lower_prefix)
        for trigger in catalog.QUEUES:
            queue, dlq = trigger_queue(self, trigger)
            self.dead_letter_queues[f"queue-{trigger.name}"] = dlq
            CfnOutput(self, f"{pascal(trigger.name)}QueueUrl", value=queue.queue_url)
        self.jwt_secret = secretsmanager.Secret(
            self,
            "JwtSigningKey",
            description="ES256 JWT signing key (PEM); LocalStack profile",
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True),
        )
        sns.Topic(self, "NotificationTopic", enforce_ssl=True)
        ticket = alarm_topic(self, "TicketTopic", config, "ticket", alarm_topic_key(self, "AlarmKey", config))
        # Stands in for the ticket receivers: the smoke test reads the alarm notifications here.
        self.alarm_inbox = encrypted_queue(self, "AlarmInbox")
        ticket.add_subscription(subscriptions.SqsSubscription(self.alarm_inbox, raw_message_delivery=True))
        CfnOutput(self, "AlarmInboxUrl", value=self.alarm_inbox.queue_url)
        for key, dlq in self.dead_letter_queues.items():
            alarm = cw.Alarm(
                self,
                f"DlqDepth{pascal(key.replace(':', '_'))}",
                alarm_name=f"{config.prefix}-slo-dlq-depth-{key.replace(':', '-')}",
                alarm_description=alarm_description(
                    config, "dlq-depth", f"[ticket] SLO dlq-depth-{key}: the dead-letter queue is not empty."
                ),
                metric=dlq.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=Duration.minutes(1)
                ),
                threshold=0,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(ticket))
            CfnOutput(self, f"DlqUrl{pascal(key.replace(':', '_'))}", value=dlq.queue_url)
        CfnOutput(self, "EventBusName", value=bus.event_bus_name)
        for target, inbox in self.inboxes.items():
            CfnOutput(self, f"{pascal(target)}InboxUrl", value=inbox.queue_url)
