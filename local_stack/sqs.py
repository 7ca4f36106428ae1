"""Local SQS queues and the SQS API (AWS JSON 1.0) for the ordinary boto3 ``sqs`` client.

The local stack keeps its dead letters where the cloud keeps them: in SQS queues with the names the
catalog gives (``infra.catalog.target_dlq_name`` for EventBridge target DLQs,
``async_failure_queue_name`` for Lambda on-failure destinations), so ``python -m
chatflow_dev.events redrive --queue-url ...`` and any boto3 script work on them unchanged, with
``AWS_ENDPOINT_URL`` (or ``endpoint_url``) pointing at the local AWS endpoint. Rules created with
PutTargets can target a local queue too.

Semantics kept: at-least-once receive with a visibility timeout (a received message is hidden until
it is deleted or the timeout passes, then received again with a new receipt handle and a higher
``ApproximateReceiveCount``), long polling (``WaitTimeSeconds``), message attributes with their MD5
(as SQS computes it), batches of at most 10 with per-entry results, ``QueueDoesNotExist`` with the
query-compatible error header botocore maps to ``client.exceptions.QueueDoesNotExist``.
Not emulated: FIFO queues, message retention expiry, delay seconds, queue redrive policies, KMS.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import secrets
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from local_stack.aws_errors import AwsError

LOCAL_ACCOUNT = "000000000000"
MAX_BATCH = 10
MAX_MESSAGE_BYTES = 256 * 1024
MAX_WAIT_S = 20
#: SQS defaults (CreateQueue attributes).
DEFAULT_VISIBILITY_TIMEOUT_S = 30
DEFAULT_RETENTION_S = 345600


class QueueDoesNotExist(AwsError):
    def __init__(self) -> None:
        super().__init__(
            "The specified queue does not exist.",
            code="com.amazonaws.sqs#QueueDoesNotExist",
            # SQS moved from the query protocol to JSON; this header keeps the old code, and
            # botocore uses it to raise client.exceptions.QueueDoesNotExist.
            headers={"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"},
        )


def _invalid(message: str, code: str = "InvalidParameterValue") -> AwsError:
    return AwsError(
        message, code=f"com.amazonaws.sqs#{code}", headers={"x-amzn-query-error": f"{code};Sender"}
    )


def md5_of_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """SQS's MD5OfMessageAttributes: per attribute (sorted by name) the length-prefixed name, data
    type, a transport byte (1 string, 2 binary) and the length-prefixed value."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        attr = attributes[name]
        data_type = str(attr.get("DataType", "String"))
        for part in (name.encode(), data_type.encode()):
            digest.update(struct.pack(">I", len(part)) + part)
        if "BinaryValue" in attr:
            value = attr["BinaryValue"]
            raw = value if isinstance(value, bytes) else str(value).encode()
            digest.update(b"\x02" + struct.pack(">I", len(raw)) + raw)
        else:
            raw = str(attr.get("StringValue", "")).encode()
            digest.update(b"\x01" + struct.pack(">I", len(raw)) + raw)
    return digest.hexdigest()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


@dataclass
class Message:
    message_id: str
    body: str
    attributes: dict[str, dict[str, Any]]
    sent_at: float
    receive_count: int = 0
    first_received_at: float | None = None
    visible_at: float = 0.0
    receipt_handle: str | None = None

    def to_json(self, *, system: bool, attribute_names: set[str] | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "MessageId": self.message_id,
            "ReceiptHandle": self.receipt_handle,
            "MD5OfBody": _md5(self.body),
            "Body": self.body,
        }
        if system:
            out["Attributes"] = {
                "SenderId": LOCAL_ACCOUNT,
                "SentTimestamp": str(int(self.sent_at * 1000)),
                "ApproximateReceiveCount": str(self.receive_count),
                "ApproximateFirstReceiveTimestamp": str(int((self.first_received_at or self.sent_at) * 1000)),
            }
        if self.attributes and attribute_names is not None:
            wanted = {
                k: v
                for k, v in self.attributes.items()
                if "All" in attribute_names or ".*" in attribute_names or k in attribute_names
            }
            if wanted:
                out["MessageAttributes"] = wanted
                out["MD5OfMessageAttributes"] = md5_of_attributes(wanted)
        return out


@dataclass
class Queue:
    name: str
    arn: str
    created_at: float
    attributes: dict[str, str]
    messages: dict[str, Message] = field(default_factory=dict)

    @property
    def visibility_timeout_s(self) -> int:
        return int(self.attributes.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT_S))


class LocalQueues:
    """Every local queue of one account and region. Thread-safe (the bus's delivery threads and the
    Lambda service write dead letters while the HTTP API reads)."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        account: str = LOCAL_ACCOUNT,
        endpoint_url: str = "http://127.0.0.1:4566",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.region = region
        self.account = account
        #: Where queue URLs point (set once the endpoint is listening).
        self.endpoint_url = endpoint_url
        self.clock = clock
        self._lock = threading.Condition()
        self._queues: dict[str, Queue] = {}
        self._handles: dict[str, tuple[str, str]] = {}  # receipt handle -> (queue, message id)
        self._seq = itertools.count()

    # --- names ----------------------------------------------------------------------------------
    def arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def url(self, name: str) -> str:
        return f"{self.endpoint_url.rstrip('/')}/{self.account}/{name}"

    def _name_of(self, ref: str) -> str:
        """A queue URL (any host: the client may reach us by another name), ARN or name."""
        if ref.startswith("arn:"):
            return ref.rsplit(":", 1)[-1]
        if "://" in ref or ref.startswith("/"):
            return ref.rstrip("/").rsplit("/", 1)[-1]
        return ref

    # --- queues ---------------------------------------------------------------------------------
    def create(self, name: str, attributes: Mapping[str, str] | None = None) -> Queue:
        if not name or len(name) > 80 or not all(c.isalnum() or c in "-_" for c in name):
            raise _invalid(
                "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
            )
        with self._lock:
            queue = self._queues.get(name)
            if queue is None:
                queue = Queue(
                    name, self.arn(name), self.clock(), {k: str(v) for k, v in (attributes or {}).items()}
                )
                self._queues[name] = queue
            elif attributes and any(queue.attributes.get(k) != str(v) for k, v in attributes.items()):
                raise _invalid(
                    "A queue already exists with the same name and a different value for attribute(s)",
                    "QueueNameExists",
                )
            return queue

    def get(self, ref: str) -> Queue:
        with self._lock:
            queue = self._queues.get(self._name_of(ref))
        if queue is None:
            raise QueueDoesNotExist()
        return queue

    def exists(self, ref: str) -> bool:
        with self._lock:
            return self._name_of(ref) in self._queues

    def names(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(n for n in self._queues if n.startswith(prefix))

    def delete_queue(self, ref: str) -> None:
        name = self.get(ref).name
        with self._lock:
            self._queues.pop(name, None)

    def purge(self, ref: str) -> None:
        queue = self.get(ref)
        with self._lock:
            queue.messages.clear()

    def attributes(self, ref: str) -> dict[str, str]:
        queue = self.get(ref)
        now = self.clock()
        with self._lock:
            visible = sum(1 for m in queue.messages.values() if m.visible_at <= now)
            return {
                "QueueArn": queue.arn,
                "ApproximateNumberOfMessages": str(visible),
                "ApproximateNumberOfMessagesNotVisible": str(len(queue.messages) - visible),
                "ApproximateNumberOfMessagesDelayed": "0",
                "CreatedTimestamp": str(int(queue.created_at)),
                "LastModifiedTimestamp": str(int(queue.created_at)),
                "VisibilityTimeout": str(queue.visibility_timeout_s),
                "MessageRetentionPeriod": queue.attributes.get(
                    "MessageRetentionPeriod", str(DEFAULT_RETENTION_S)
                ),
                "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
                "DelaySeconds": "0",
                "ReceiveMessageWaitTimeSeconds": queue.attributes.get("ReceiveMessageWaitTimeSeconds", "0"),
                "SqsManagedSseEnabled": "true",
                **{k: v for k, v in queue.attributes.items() if k in ("RedrivePolicy", "Policy")},
            }

    # --- messages -------------------------------------------------------------------------------
    def send(self, ref: str, body: str, attributes: Mapping[str, Mapping[str, Any]] | None = None) -> Message:
        if not isinstance(body, str) or not body:
            raise _invalid("The request must contain the parameter MessageBody.", "MissingParameter")
        if len(body.encode()) > MAX_MESSAGE_BYTES:
            raise _invalid(
                "One or more parameters are invalid. Reason: Message must be shorter than "
                f"{MAX_MESSAGE_BYTES} bytes."
            )
        queue = self.get(ref)
        message = Message(
            str(uuid.uuid4()), body, {k: dict(v) for k, v in (attributes or {}).items()}, self.clock()
        )
        with self._lock:
            # Keyed in sending order (dicts keep it): receives take the oldest visible first.
            queue.messages[f"{next(self._seq):012d}-{message.message_id}"] = message
            self._lock.notify_all()
        return message

    def _take(self, queue: Queue, max_messages: int, visibility_s: int) -> list[Message]:
        now = self.clock()
        taken: list[Message] = []
        for message in queue.messages.values():
            if len(taken) >= max_messages:
                break
            if message.visible_at > now:
                continue
            message.receive_count += 1
            message.first_received_at = message.first_received_at or now
            message.visible_at = now + visibility_s
            message.receipt_handle = secrets.token_urlsafe(24)
            self._handles[message.receipt_handle] = (queue.name, message.message_id)
            taken.append(message)
        return taken

    def receive(self, ref: str, *, max_messages: int = 1, visibility_s: int | None = None) -> list[Message]:
        """Receive without waiting (long polling is :meth:`receive_wait`)."""
        if not 1 <= max_messages <= MAX_BATCH:
            raise _invalid(
                f"Value {max_messages} for parameter MaxNumberOfMessages is invalid. "
                "Reason: Must be between 1 and 10, if provided."
            )
        queue = self.get(ref)
        with self._lock:
            return self._take(
                queue, max_messages, queue.visibility_timeout_s if visibility_s is None else visibility_s
            )

    async def receive_wait(
        self, ref: str, *, max_messages: int = 1, visibility_s: int | None = None, wait_s: float = 0
    ) -> list[Message]:
        deadline = time.monotonic() + min(max(wait_s, 0), MAX_WAIT_S)
        while True:
            taken = self.receive(ref, max_messages=max_messages, visibility_s=visibility_s)
            if taken or time.monotonic() >= deadline:
                return taken
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _by_handle(self, ref: str, receipt_handle: str) -> tuple[Queue, str]:
        queue = self.get(ref)
        found = self._handles.get(receipt_handle)
        if found is None or found[0] != queue.name:
            raise _invalid(
                f'The input receipt handle "{receipt_handle}" is not a valid receipt handle.',
                "ReceiptHandleIsInvalid",
            )
        return queue, found[1]

    def delete(self, ref: str, receipt_handle: str) -> None:
        with self._lock:
            queue, message_id = self._by_handle(ref, receipt_handle)
            for key, message in list(queue.messages.items()):
                if message.message_id == message_id:
                    del queue.messages[key]
            self._handles.pop(receipt_handle, None)

    def change_visibility(self, ref: str, receipt_handle: str, timeout_s: int) -> None:
        if not 0 <= timeout_s <= 43200:
            raise _invalid("VisibilityTimeout must be between 0 and 43200 seconds.")
        with self._lock:
            queue, message_id = self._by_handle(ref, receipt_handle)
            for message in queue.messages.values():
                if message.message_id == message_id:
                    message.visible_at = self.clock() + timeout_s
            self._lock.notify_all()

    # --- inspection (tests, local tooling) ------------------------------------------------------
    def peek(self, ref: str) -> list[Message]:
        """Every message of the queue, visible or not, oldest first, without receiving."""
        queue = self.get(ref)
        with self._lock:
            return list(queue.messages.values())

    def wait_for(self, ref: str, count: int, timeout: float = 10.0) -> list[Message]:
        """Block until the queue holds at least ``count`` messages (or the timeout); returns them."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                queue = self._queues.get(self._name_of(ref))
                held = list(queue.messages.values()) if queue else []
                remaining = deadline - time.monotonic()
                if len(held) >= count or remaining <= 0:
                    return held
                self._lock.wait(min(remaining, 0.1))

    def __iter__(self) -> Iterator[Queue]:
        with self._lock:
            return iter(list(self._queues.values()))


# --- the SQS API over AWS JSON 1.0 ---------------------------------------------------------------


def _str(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise _invalid(f"The request must contain the parameter {name}.", "MissingParameter")
    return value


def _int(params: Mapping[str, Any], name: str, default: int | None) -> int | None:
    value = params.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"Value {value!r} for parameter {name} is invalid.")
    return value


def _names(params: Mapping[str, Any], *keys: str) -> set[str]:
    out: set[str] = set()
    for key in keys:
        value = params.get(key)
        if isinstance(value, list):
            out.update(str(v) for v in value)
    return out


def _entries(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries = params.get("Entries")
    if not isinstance(entries, list) or not entries:
        raise _invalid(
            "There should be at least one SendMessageBatchRequestEntry in the request.", "EmptyBatchRequest"
        )
    if len(entries) > MAX_BATCH:
        raise _invalid(
            f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(entries)}.",
            "TooManyEntriesInBatchRequest",
        )
    ids = [e.get("Id") for e in entries if isinstance(e, dict)]
    if len(ids) != len(entries) or len(set(ids)) != len(ids):
        raise _invalid("Id values must be unique within a batch request.", "BatchEntryIdsNotDistinct")
    return entries


class SqsApi:
    """SQS operations over :class:`LocalQueues` (AWS JSON 1.0, ``X-Amz-Target: AmazonSQS.<Op>``)."""

    target_prefix = "AmazonSQS."
    signing_name = "sqs"
    content_type = "application/x-amz-json-1.0"

    def __init__(self, queues: LocalQueues) -> None:
        self.queues = queues

    def operation(self, name: str) -> Callable[[dict[str, Any]], Any] | None:
        return {
            "CreateQueue": self._create_queue,
            "GetQueueUrl": self._get_queue_url,
            "ListQueues": self._list_queues,
            "GetQueueAttributes": self._get_queue_attributes,
            "DeleteQueue": self._delete_queue,
            "PurgeQueue": self._purge_queue,
            "SendMessage": self._send_message,
            "SendMessageBatch": self._send_message_batch,
            "ReceiveMessage": self._receive_message,
            "DeleteMessage": self._delete_message,
            "DeleteMessageBatch": self._delete_message_batch,
            "ChangeMessageVisibility": self._change_visibility,
        }.get(name)

    def _create_queue(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _str(params, "QueueName")
        if (
            name.endswith(".fifo")
            or str((params.get("Attributes") or {}).get("FifoQueue", "")).lower() == "true"
        ):
            raise _invalid("FIFO queues are not emulated by the local stack.")
        self.queues.create(name, params.get("Attributes") or {})
        return {"QueueUrl": self.queues.url(name)}

    def _get_queue_url(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"QueueUrl": self.queues.url(self.queues.get(_str(params, "QueueName")).name)}

    def _list_queues(self, params: dict[str, Any]) -> dict[str, Any]:
        names = self.queues.names(str(params.get("QueueNamePrefix") or ""))
        return {"QueueUrls": [self.queues.url(n) for n in names]} if names else {}

    def _get_queue_attributes(self, params: dict[str, Any]) -> dict[str, Any]:
        attributes = self.queues.attributes(_str(params, "QueueUrl"))
        wanted = _names(params, "AttributeNames") or {"All"}
        if "All" not in wanted:
            attributes = {k: v for k, v in attributes.items() if k in wanted}
        return {"Attributes": attributes}

    def _delete_queue(self, params: dict[str, Any]) -> dict[str, Any]:
        self.queues.delete_queue(_str(params, "QueueUrl"))
        return {}

    def _purge_queue(self, params: dict[str, Any]) -> dict[str, Any]:
        self.queues.purge(_str(params, "QueueUrl"))
        return {}

    def _sent(self, url: str, entry: Mapping[str, Any]) -> dict[str, Any]:
        """Send one message (SendMessage, or a SendMessageBatch entry) and describe it as SQS does."""
        attributes = entry.get("MessageAttributes") or {}
        message = self.queues.send(url, _str(entry, "MessageBody"), attributes)
        out = {"MessageId": message.message_id, "MD5OfMessageBody": _md5(message.body)}
        if attributes:
            out["MD5OfMessageAttributes"] = md5_of_attributes(attributes)
        return out

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._sent(_str(params, "QueueUrl"), params)

    def _batch(
        self, params: dict[str, Any], apply: Callable[[str, dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """A batch operation: ``apply`` per entry, each entry succeeding or failing on its own."""
        url = _str(params, "QueueUrl")
        self.queues.get(url)
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in _entries(params):
            try:
                successful.append({"Id": entry["Id"], **apply(url, entry)})
            except AwsError as exc:
                code = exc.code.rsplit("#", 1)[-1]
                failed.append({"Id": entry["Id"], "SenderFault": True, "Code": code, "Message": exc.message})
        return {"Successful": successful, "Failed": failed}

    def _send_message_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._batch(params, self._sent)

    async def _receive_message(self, params: dict[str, Any]) -> dict[str, Any]:
        url = _str(params, "QueueUrl")
        queue = self.queues.get(url)
        default_wait = int(queue.attributes.get("ReceiveMessageWaitTimeSeconds", "0"))
        wait = _int(params, "WaitTimeSeconds", default_wait) or 0
        if not 0 <= wait <= MAX_WAIT_S:
            raise _invalid(
                f"Value {wait} for parameter WaitTimeSeconds is invalid. "
                "Reason: Must be >= 0 and <= 20, if provided."
            )
        messages = await self.queues.receive_wait(
            url,
            max_messages=_int(params, "MaxNumberOfMessages", 1) or 1,
            visibility_s=_int(params, "VisibilityTimeout", None),
            wait_s=wait,
        )
        system = bool(_names(params, "AttributeNames", "MessageSystemAttributeNames"))
        attribute_names = _names(params, "MessageAttributeNames") or None
        if not messages:
            return {}
        return {"Messages": [m.to_json(system=system, attribute_names=attribute_names) for m in messages]}

    def _delete_message(self, params: dict[str, Any]) -> dict[str, Any]:
        self.queues.delete(_str(params, "QueueUrl"), _str(params, "ReceiptHandle"))
        return {}

    def _delete_message_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        def delete(url: str, entry: dict[str, Any]) -> dict[str, Any]:
            self.queues.delete(url, _str(entry, "ReceiptHandle"))
            return {}

        return self._batch(params, delete)

    def _change_visibility(self, params: dict[str, Any]) -> dict[str, Any]:
        timeout = _int(params, "VisibilityTimeout", None)
        if timeout is None:
            raise _invalid("The request must contain the parameter VisibilityTimeout.", "MissingParameter")
        self.queues.change_visibility(_str(params, "QueueUrl"), _str(params, "ReceiptHandle"), timeout)
        return {}
