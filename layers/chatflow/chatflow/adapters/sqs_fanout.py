"""The asynchronous fan-out path for large rooms: SQS queue -> ``fanout`` function.

The sender's handler enqueues jobs and returns; the consumer delivers. A job carries the frame
and a CHUNK of the room's member ids (at most :data:`CHUNK_MEMBERS`), so a 10,000-member room
becomes 20 independent jobs that Lambda processes in parallel and retries separately. The
consumer re-checks each chunk against the room's CURRENT members (a member removed meanwhile
receives nothing) and resolves their live connections at delivery time.

Presence transitions whose audience (the user's co-members) is above
``presence_async_threshold`` travel the same way (``enqueue_presence``): the job carries the
transition's version, and the consumer drops it when a newer transition happened meanwhile --
a user cycling sockets costs one delivery per settled state, not one per transition.

Jobs are sent with SendMessageBatch (<= 10 entries and <= 256 KB per call).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from chatflow.errors import InvalidInput, Unavailable
from chatflow.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

CHUNK_MEMBERS = 500
_MAX_BATCH_ENTRIES = 10
_MAX_BATCH_BYTES = 250 * 1024  # SQS: 256 KiB per message and per batch (headroom for attributes)
JOB_VERSION = 1


@dataclass(frozen=True, slots=True)
class PresenceStamp:
    """What a presence job announces: ``user_id`` went online/offline at ``version``; the consumer
    re-checks it is still the user's latest transition (a superseded one is dropped: coalesced)."""

    user_id: UUID
    version: int
    online: bool


@dataclass(frozen=True, slots=True)
class FanoutJob:
    #: The room whose CURRENT members may receive the frame; None for a presence job, whose
    #: recipients are the co-members the announcing function found.
    room_id: UUID | None
    frame: dict[str, Any]
    member_ids: tuple[UUID, ...]
    exclude_connection: str | None = None
    presence: PresenceStamp | None = None

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "v": JOB_VERSION,
            "roomId": None if self.room_id is None else str(self.room_id),
            "frame": self.frame,
            "memberIds": [str(m) for m in self.member_ids],
            "exclude": self.exclude_connection,
        }
        if self.presence is not None:
            p = self.presence
            body["presence"] = {"userId": str(p.user_id), "version": p.version, "online": p.online}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, body: str) -> FanoutJob:
        try:
            data = json.loads(body)
            if data.get("v") != JOB_VERSION or not isinstance(data.get("frame"), dict):
                raise ValueError("unknown job version or frame")
            exclude = data.get("exclude")
            stamp = data.get("presence")
            presence = None
            if stamp is not None:
                if not isinstance(stamp["version"], int) or not isinstance(stamp["online"], bool):
                    raise ValueError("malformed presence stamp")
                presence = PresenceStamp(UUID(stamp["userId"]), stamp["version"], stamp["online"])
            room = data["roomId"]
            if room is None and presence is None:
                raise ValueError("a job names a room or a presence transition")
            return cls(
                room_id=None if room is None else UUID(room),
                frame=data["frame"],
                member_ids=tuple(UUID(m) for m in data["memberIds"]),
                exclude_connection=exclude if isinstance(exclude, str) else None,
                presence=presence,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"malformed fan-out job: {exc}", code="bad_fanout_job") from None


def chunk_jobs(
    room_id: UUID | None,
    frame: dict[str, Any],
    member_ids: Iterable[UUID],
    exclude_connection: str | None,
    chunk: int = CHUNK_MEMBERS,
    *,
    presence: PresenceStamp | None = None,
) -> list[FanoutJob]:
    members = list(dict.fromkeys(member_ids))
    return [
        FanoutJob(room_id, frame, tuple(members[i : i + chunk]), exclude_connection, presence)
        for i in range(0, len(members), chunk)
    ]


class SqsFanoutQueue:
    """FanoutQueue port over SQS (``settings.fanout_queue_url``)."""

    def __init__(self, settings: Settings, *, queue_url: str | None = None) -> None:
        self._settings = settings
        self._queue_url = queue_url or self._settings.fanout_queue_url
        self._lock = threading.Lock()
        self._client: SQSClient | None = None

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    # botocore directly (boto3 adds only import time on top of the same client).
                    import botocore.session
                    from botocore.config import Config

                    client = botocore.session.get_session().create_client(
                        "sqs",
                        region_name=self._settings.aws_region,
                        endpoint_url=self._settings.aws_endpoint_url,
                        config=Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard"}),
                    )
                    self._client = cast("SQSClient", client)
        return self._client

    def enqueue(
        self,
        room_id: UUID,
        frame: dict[str, object],
        *,
        member_ids: Iterable[UUID],
        exclude_connection: str | None = None,
    ) -> None:
        self._send_jobs(chunk_jobs(room_id, dict(frame), member_ids, exclude_connection))

    def enqueue_presence(
        self,
        user_id: UUID,
        version: int,
        online: bool,
        frame: dict[str, object],
        *,
        member_ids: Iterable[UUID],
    ) -> None:
        """A presence transition for a large audience (co-members), in chunks like a room's."""
        stamp = PresenceStamp(user_id, version, online)
        self._send_jobs(chunk_jobs(None, dict(frame), member_ids, None, presence=stamp))

    def _send_jobs(self, jobs: list[FanoutJob]) -> None:
        if not self._queue_url:
            raise Unavailable("the fan-out queue is not configured", code="fanout_unavailable")
        batch: list[SendMessageBatchRequestEntryTypeDef] = []
        size = 0
        for job in jobs:
            body = job.to_json()
            if len(body.encode()) > _MAX_BATCH_BYTES:
                raise InvalidInput("frame too large for the fan-out queue", code="frame_too_large")
            if batch and (len(batch) == _MAX_BATCH_ENTRIES or size + len(body.encode()) > _MAX_BATCH_BYTES):
                self._send(batch)
                batch, size = [], 0
            batch.append({"Id": uuid.uuid4().hex, "MessageBody": body})
            size += len(body.encode())
        if batch:
            self._send(batch)

    def _send(self, entries: list[SendMessageBatchRequestEntryTypeDef]) -> None:
        assert self._queue_url is not None
        pending = entries
        for _ in range(3):
            response = self.client.send_message_batch(QueueUrl=self._queue_url, Entries=pending)
            failed_ids = {f["Id"] for f in response.get("Failed", []) if not f.get("SenderFault")}
            sender_faults = [f for f in response.get("Failed", []) if f.get("SenderFault")]
            if sender_faults:
                raise Unavailable(
                    f"fan-out job refused: {sender_faults[0].get('Message')}", code="fanout_unavailable"
                )
            pending = [e for e in pending if e["Id"] in failed_ids]
            if not pending:
                return
        raise Unavailable(f"{len(pending)} fan-out job(s) not enqueued", code="fanout_unavailable")
