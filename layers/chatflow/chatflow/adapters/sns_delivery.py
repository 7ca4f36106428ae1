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
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from chatflow.domain.notification_models import Notification
from chatflow.settings import Settings
from chatflow.wire import notification_payload

if TYPE_CHECKING:
    from chatflow.adapters.aws_http import AwsQueryClient, CallTracer

log = logging.getLogger(__name__)

#: As botocore's "standard" retry mode did for this client: 3 attempts in all, for throttling,
#: 5xx and connection errors, with full-jitter exponential backoff.
MAX_ATTEMPTS = 3
_THROTTLING = (
    "Throttling",
    "ThrottlingException",
    "Throttled",
    "RequestLimitExceeded",
    "TooManyRequestsException",
)


class PublishClient(Protocol):
    """What the channel needs: botocore's ``sns`` client or :class:`SnsApi`."""

    def publish(self, *, TopicArn: str, Message: str, MessageAttributes: Mapping[str, Any]) -> Any: ...


class SnsApi:
    """SNS ``Publish`` over :class:`~chatflow.adapters.aws_http.AwsQueryClient` (no botocore on the
    cold path, docs/performance.md), with botocore's call shape and its standard retries."""

    def __init__(
        self,
        client: AwsQueryClient,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.max_attempts = max(1, max_attempts)
        self._sleep = sleep

    def publish(self, *, TopicArn: str, Message: str, MessageAttributes: Mapping[str, Any]) -> dict[str, str]:
        params = {"TopicArn": TopicArn, "Message": Message}
        for i, (name, value) in enumerate(MessageAttributes.items(), start=1):
            prefix = f"MessageAttributes.entry.{i}"
            params[f"{prefix}.Name"] = name
            params[f"{prefix}.Value.DataType"] = str(value["DataType"])
            params[f"{prefix}.Value.StringValue"] = str(value["StringValue"])
        from chatflow.adapters.aws_http import AwsConnectionError, AwsServiceError

        for attempt in range(self.max_attempts):
            if attempt:
                self._sleep(random.uniform(0, min(20.0, 2.0**attempt)))  # noqa: S311 (full jitter)
            try:
                return self.client.call("Publish", params)
            except AwsServiceError as exc:
                retryable = exc.status >= 500 or exc.status == 429 or exc.code in _THROTTLING
                if not retryable or attempt == self.max_attempts - 1:
                    raise
            except AwsConnectionError:
                if attempt == self.max_attempts - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def make_sns_client(settings: Settings, credentials: Any = None, tracer: CallTracer | None = None) -> SnsApi:
    """The functions' SNS client (lean, query protocol); ``settings.aws_endpoint_url`` for local."""
    from chatflow.adapters.aws_http import AwsQueryClient

    return SnsApi(
        AwsQueryClient(
            signing_name="sns",
            service_id="SNS",
            api_version="2010-03-31",
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            credentials=credentials,
            tracer=tracer,
            connect_timeout_s=2,
            read_timeout_s=5,
        )
    )


class SnsNotificationChannel:
    name = "sns"

    def __init__(
        self,
        topic_arn: str | None,
        *,
        client: PublishClient | None = None,
        client_factory: Callable[[], PublishClient] | None = None,
    ) -> None:
        self.topic_arn = topic_arn
        self._client = client
        self._client_factory = client_factory
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, tracer: CallTracer | None = None) -> SnsNotificationChannel:
        """The deployment's topic (``NOTIFICATION_TOPIC_ARN``); the client is made on first use."""
        return cls(
            settings.notification_topic_arn, client_factory=lambda: make_sns_client(settings, tracer=tracer)
        )

    @property
    def client(self) -> PublishClient:
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
