"""Events: the bus, its archive and schema discovery, rules and schedules from the catalog.

Every target gets EventBridge's retry policy (the catalog rule's attempts and maximum event age)
and its own SQS dead-letter queue, so a failed delivery is kept and can be redriven, never lost.
The bus' name is fixed (``infra.functions.bus_name``) so the functions, deployed before this stack,
name it in ``EVENT_BUS_NAME`` and in their ``events:PutEvents`` statement without a reference.
(The LocalStack community profile, without Lambda, routes the same rules to SQS queues instead:
infra/localstack.py.)
"""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_eventschemas as eventschemas
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import catalog
from infra.common import encrypted_queue, pascal
from infra.config import EnvConfig
from infra.functions import bus_name

#: EventBridge event-pattern keys (catalog dict form) -> aws_events.EventPattern arguments.
_PATTERN_FIELDS = {
    "source": "source",
    "detail-type": "detail_type",
    "detail": "detail",
    "account": "account",
    "region": "region",
    "resources": "resources",
    "id": "id",
    "time": "time",
    "version": "version",
}


def event_pattern(pattern: dict[str, object]) -> events.EventPattern:
    unknown = set(pattern) - set(_PATTERN_FIELDS)
    if unknown:
        raise ValueError(f"unsupported event-pattern keys: {sorted(unknown)}")
    return events.EventPattern(**{_PATTERN_FIELDS[k]: v for k, v in pattern.items()})  # type: ignore[arg-type]


#: A rule target for a catalog function: (function, its DLQ, retry attempts, maximum event age).
TargetFactory = Callable[[str, sqs.Queue, int, Duration], events.IRuleTarget]


def add_target(
    scope: Construct,
    rule: events.Rule,
    key: str,
    function: str,
    make_target: TargetFactory,
    *,
    retry: catalog.RetryPolicy,
    queue_name: str,
) -> sqs.Queue:
    """Target ``function`` from ``rule`` with its own DLQ (returned) and the given retry policy."""
    dlq = encrypted_queue(
        scope, f"{pascal(key.replace(':', '_'))}Dlq", retention_days=14, queue_name=queue_name
    )
    rule.add_target(make_target(function, dlq, retry.max_attempts, Duration.seconds(retry.max_event_age_s)))
    return dlq


def add_catalog_rules(
    scope: Construct,
    bus: events.IEventBus,
    make_target: TargetFactory,
    dead_letter_queues: dict[str, sqs.Queue],
    *,
    name_prefix: str,
) -> dict[str, events.Rule]:
    """The catalog's event rules on ``bus``; each target's DLQ (named by
    ``catalog.target_dlq_name``) goes into ``dead_letter_queues`` under ``"<rule>:<target>"``.
    Shared by the AWS stack and the LocalStack community profile."""
    rules: dict[str, events.Rule] = {}
    for rule_spec in catalog.EVENT_RULES:
        rule = events.Rule(
            scope,
            f"Rule{pascal(rule_spec.name)}",
            event_bus=bus,
            description=rule_spec.description,
            event_pattern=event_pattern(rule_spec.pattern),
        )
        rules[rule_spec.name] = rule
        for target in rule_spec.targets:
            key = f"{rule_spec.name}:{target}"
            dead_letter_queues[key] = add_target(
                scope,
                rule,
                key,
                target,
                make_target,
                retry=rule_spec.retry,
                queue_name=catalog.target_dlq_name(name_prefix, rule_spec.name, target),
            )
    return rules


class EventsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        invocables: dict[str, lambda_.IFunction],
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.bus = events.EventBus(self, "Bus", event_bus_name=bus_name(config))
        self.archive = self.bus.archive(
            "Archive",
            description="Every chat event, for replay after a consumer bug",
            event_pattern=events.EventPattern(source=[catalog.EVENT_SOURCE]),
            retention=Duration.days(config.archive_retention_days),
        )
        if config.schema_discovery:
            eventschemas.CfnDiscoverer(
                self,
                "SchemaDiscoverer",
                source_arn=self.bus.event_bus_arn,
                description="Discovers schemas of chat events (the pydantic models are the source of truth)",
                cross_account=False,
            )
        #: "<rule>:<target>" -> its dead-letter queue (the observability stack alarms on each).
        self.dead_letter_queues: dict[str, sqs.Queue] = {}

        def lambda_target(
            function: str, dlq: sqs.Queue, attempts: int, max_age: Duration
        ) -> events.IRuleTarget:
            return targets.LambdaFunction(
                invocables[function], dead_letter_queue=dlq, retry_attempts=attempts, max_event_age=max_age
            )

        self.rules = add_catalog_rules(
            self, self.bus, lambda_target, self.dead_letter_queues, name_prefix=config.lower_prefix
        )
        for schedule in catalog.SCHEDULES:
            rule = events.Rule(
                self,
                f"Schedule{pascal(schedule.name)}",
                description=f"Every {schedule.rate_minutes} min: {schedule.function}",
                schedule=events.Schedule.rate(Duration.minutes(schedule.rate_minutes)),
            )
            self.rules[schedule.name] = rule
            key = f"{schedule.name}:{schedule.function}"
            self.dead_letter_queues[key] = add_target(
                self,
                rule,
                key,
                schedule.function,
                lambda_target,
                retry=schedule.retry,
                queue_name=catalog.target_dlq_name(config.lower_prefix, schedule.name, schedule.function),
            )
