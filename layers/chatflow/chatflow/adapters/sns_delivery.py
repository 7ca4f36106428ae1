"""Notification delivery channels (the ``NotificationChannel`` port).

Default: one SNS topic per deployment (``settings.notification_topic_arn``). Each notification
is published as JSON with a ``user_id`` message attribute, so subscribers (a push service, an
email bridge, a per-user filtered SQS queue) can use SNS subscription filter policies.

A channel that is not configured delivers nothing, says so in the log, and reports
``False`` (the notification is marked ``skipped``, it stays in-app).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from chatflow.domain.notification_models import Notification
from chatflow.settings import Settings
from chatflow.wire import notification_payload

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient

log = logging.getLogger(__name__)


def make_sns_client(settings: Settings) -> SNSClient:
    # botocore directly: boto3 would only add its session layer and s3transfer (~15-20 ms of
    # imports at cold start, docs/performance.md) on top of the very same botocore client.
    import botocore.session
    from botocore.config import Config

    client = botocore.session.get_session().create_client(
        "sns",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        config=Config(
            connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 3, "mode": "standard"}
        ),
    )
    return cast("SNSClient", client)


class SnsNotificationChannel:
    name = "sns"

    def __init__(
        self,
        topic_arn: str | None,
        *,
        client: SNSClient | None = None,
        client_factory: Callable[[], SNSClient] | None = None,
    ) -> None:
        self.topic_arn = topic_arn
        self._client = client
        self._client_factory = client_factory
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SnsNotificationChannel:
        """The deployment's topic (``NOTIFICATION_TOPIC_ARN``); the client is made on first use."""
        return cls(settings.notification_topic_arn, client_factory=lambda: make_sns_client(settings))

    @property
    def client(self) -> SNSClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    if self._client_factory is None:
                        raise RuntimeError("SnsNotificationChannel has no client and no client factory")
                    self._client = self._client_factory()
        return self._client

    def deliver(self, notification: Notification) -> bool:
        user_id = notification.user_id
        if not self.topic_arn:
            log.info(
                "notification channel %s not configured (NOTIFICATION_TOPIC_ARN unset): "
                "notification %s for user %s stays in-app only",
                self.name,
                notification.id,
                user_id,
            )
            return False
        payload = notification_payload(notification)
        # Errors propagate: the consumer keeps the notification pending and the delivery is retried.
        self.client.publish(
            TopicArn=self.topic_arn,
            Message=json.dumps(payload, separators=(",", ":"), default=str, ensure_ascii=False),
            MessageAttributes={
                "user_id": {"DataType": "String", "StringValue": str(user_id)},
                "kind": {"DataType": "String", "StringValue": str(payload.get("kind", "notification"))},
            },
        )
        return True
