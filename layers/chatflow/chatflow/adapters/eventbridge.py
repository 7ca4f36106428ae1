"""EventBridge adapter: the :class:`chatflow.domain.ports.EventPublisher` implementation.

* Every event is validated against its schema BEFORE anything is sent: one invalid event in a
  call raises :class:`chatflow.events.schemas.InvalidEvent` and nothing is put on the bus.
* PutEvents takes at most 10 entries and 256 KB per call; events are sent in batches within
  both limits (an entry above 256 KB on its own fails as ``EntryTooLarge``, never retried).
* PutEvents can fail partially (``FailedEntryCount`` > 0, per-entry ``ErrorCode``) or entirely
  (throttling, network). Retryable failures are retried with exponential backoff and full
  jitter; what still fails is returned by :meth:`EventBridgePublisher.send` (the outbox relay
  records it per row) or raised by :meth:`EventBridgePublisher.publish`.
* The client is created on first use (cold start): the lean JSON-protocol client of
  ``chatflow/adapters/aws_http.py`` (no botocore on the cold path: ~0.3x of a naive cold start
  here, docs/performance.md), short timeouts, no retries of its own (we retry per entry);
  ``settings.events_endpoint_url`` points it at the local emulator. A botocore ``events``
  client works too (tests, tools): anything with ``put_events(Entries=...)``. The event schemas
  (pydantic) load on the first publish too: importing this module is cheap.
"""

from __future__ import annotations

import calendar
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from chatflow.errors import Unavailable
from chatflow.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

    from chatflow.adapters.aws_http import AwsJsonClient, CallTracer, CredentialSource
    from chatflow.events.schemas import DomainEvent

log = logging.getLogger(__name__)

#: PutEvents accepts at most 10 entries per request...
MAX_BATCH = 10
#: ...and at most 256 KB for all entries together (UTF-8 of Source, DetailType, Detail; Time 14 B).
MAX_REQUEST_BYTES = 256 * 1024
#: Per-entry error codes worth retrying; others (MalformedDetail, AccessDenied...) will not heal.
_RETRYABLE_ENTRY_CODES = frozenset({"InternalFailure", "InternalException", "ThrottlingException"})
#: Whole-call errors that will not heal by retrying.
_FATAL_CALL_CODES = frozenset(
    {
        "AccessDeniedException",
        "ValidationException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
    }
)


@dataclass(frozen=True, slots=True)
class FailedEntry:
    event_id: UUID
    detail_type: str
    error_code: str
    error_message: str
    retryable: bool

    def describe(self) -> str:
        return f"{self.error_code}: {self.error_message}"


class PublishFailed(Unavailable):
    """Some events could not be put on the bus after retries."""

    def __init__(self, failed: Sequence[FailedEntry]) -> None:
        first = failed[0].describe() if failed else ""
        super().__init__(f"{len(failed)} event(s) not published ({first})", code="events_unavailable")
        self.failed = list(failed)


class PutEventsClient(Protocol):
    """What the publisher needs of a client: botocore's ``events`` client or :class:`EventsApi`."""

    def put_events(self, *, Entries: Sequence[PutEventsRequestEntryTypeDef]) -> Mapping[str, Any]: ...


class EventsApi:
    """``PutEvents`` over :class:`~chatflow.adapters.aws_http.AwsJsonClient` (AWS JSON 1.1), with
    botocore's call shape; raises ``AwsServiceError`` / ``AwsConnectionError``."""

    def __init__(self, client: AwsJsonClient) -> None:
        self.client = client

    def put_events(self, *, Entries: Sequence[PutEventsRequestEntryTypeDef]) -> Mapping[str, Any]:
        entries = [{**e, "Time": _epoch(e["Time"])} if "Time" in e else e for e in Entries]
        return self.client.call("PutEvents", {"Entries": entries})

    def close(self) -> None:
        self.client.close()


def _epoch(value: object) -> object:
    """A timestamp as botocore serializes it for JSON protocols: epoch seconds, microseconds kept."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    seconds = calendar.timegm(value.timetuple())
    return (seconds * 10**6 + value.microsecond) / 10**6 if value.microsecond else seconds


def make_events_client(
    settings: Settings, credentials: CredentialSource | None = None, tracer: CallTracer | None = None
) -> EventsApi:
    """The functions' EventBridge client; ``credentials`` default to the environment's; with a
    ``tracer`` each call is an X-Ray subsegment."""
    from chatflow.adapters.aws_http import AwsJsonClient

    return EventsApi(
        AwsJsonClient(
            signing_name="events",
            service_id="EventBridge",
            target_prefix="AWSEvents",
            json_version="1.1",
            region=settings.aws_region,
            endpoint_url=settings.events_endpoint_url or settings.aws_endpoint_url,
            credentials=credentials,
            tracer=tracer,
            connect_timeout_s=2,
            read_timeout_s=5,
        )
    )


class EventBridgePublisher:
    """Puts domain events on the bus ``bus_name`` with ``source``; see the module docstring."""

    def __init__(
        self,
        *,
        bus_name: str,
        source: str,
        client: PutEventsClient | None = None,
        client_factory: Callable[[], PutEventsClient] | None = None,
        max_attempts: int = 3,
        base_delay_s: float = 0.05,
        max_delay_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if client is None and client_factory is None:
            raise ValueError("give the client or a factory for it (make_events_client)")
        self.bus_name = bus_name
        self.source = source
        self._client = client
        self._client_factory = client_factory
        self._lock = threading.Lock()
        self.max_attempts = max(1, max_attempts)
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> EventBridgePublisher:
        """The deployment's bus and source; the client is made on first use (``client_factory``
        overrides :func:`make_events_client`: a container shares one client between publishers)."""
        options.setdefault("client_factory", lambda: make_events_client(settings))
        return cls(bus_name=settings.event_bus_name, source=settings.event_source, **options)

    @property
    def client(self) -> PutEventsClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    assert self._client_factory is not None
                    self._client = self._client_factory()
        return self._client

    # --- port -------------------------------------------------------------------------------

    def publish(self, events: Sequence[DomainEvent]) -> None:
        """Validate and put ``events``; raise :class:`PublishFailed` if any is not accepted."""
        failed = self.send(events)
        if failed:
            raise PublishFailed(failed)

    # --- per-entry outcome (the outbox relay uses this) ---------------------------------------

    def send(self, events: Sequence[DomainEvent]) -> list[FailedEntry]:
        """Validate all, put in batches (≤ 10 entries, ≤ 256 KB), retry retryable failures;
        return what failed."""
        # Imported here: the pydantic schemas only load when something is actually published.
        from chatflow.events.schemas import ensure_valid

        valid = [ensure_valid(e) for e in events]  # raises before anything is sent
        failed: list[FailedEntry] = []
        batch: list[DomainEvent] = []
        batch_bytes = 0
        for event in valid:
            size = self.entry_size(event)
            if size > MAX_REQUEST_BYTES:
                failed.append(
                    FailedEntry(event.event_id, event.detail_type, "EntryTooLarge", f"{size} bytes", False)
                )
                continue
            if batch and (len(batch) == MAX_BATCH or batch_bytes + size > MAX_REQUEST_BYTES):
                failed.extend(self._send_batch(batch))
                batch, batch_bytes = [], 0
            batch.append(event)
            batch_bytes += size
        if batch:
            failed.extend(self._send_batch(batch))
        return failed

    def entry_size(self, event: DomainEvent) -> int:
        """The entry's size as EventBridge counts it."""
        entry = self.entry(event)
        return (
            14
            + len(entry["Source"].encode())
            + len(entry["DetailType"].encode())
            + len(entry["Detail"].encode())
        )

    def entry(self, event: DomainEvent) -> PutEventsRequestEntryTypeDef:
        import json

        return {
            "Source": self.source,
            "DetailType": event.detail_type,
            # UTF-8 as is (not \uXXXX escapes, which would triple the size of non-Latin text).
            "Detail": json.dumps(event.detail(), separators=(",", ":"), ensure_ascii=False),
            "EventBusName": self.bus_name,
            "Time": event.occurred_at,
        }

    def _send_batch(self, batch: Sequence[DomainEvent]) -> list[FailedEntry]:
        pending = list(batch)
        failures: dict[UUID, FailedEntry] = {}
        for attempt in range(self.max_attempts):
            if attempt:
                self._sleep(self._backoff(attempt))
            outcome = self._put(pending)
            retry: list[DomainEvent] = []
            for event in pending:
                failure = outcome.get(event.event_id)
                if failure is None:
                    failures.pop(event.event_id, None)
                    continue
                failures[event.event_id] = failure
                if failure.retryable:
                    retry.append(event)
            if not retry:
                break
            log.warning(
                "PutEvents: %d of %d entries failed (attempt %d/%d): %s",
                len(retry),
                len(pending),
                attempt + 1,
                self.max_attempts,
                next(iter(failures.values())).describe(),
            )
            pending = retry
        return list(failures.values())

    def _put(self, events: Sequence[DomainEvent]) -> dict[UUID, FailedEntry]:
        """One PutEvents call; returns the failed entries by event id (empty: all accepted)."""
        try:
            response = self.client.put_events(Entries=[self.entry(e) for e in events])
        except Exception as exc:
            failure = _call_failure(exc)
            if failure is None:
                raise
            code, message, retryable = failure
            return self._all_failed(events, code, message, retryable=retryable)
        results: list[Any] = list(response.get("Entries", []))
        if len(results) != len(events):
            return self._all_failed(
                events, "InvalidResponse", f"{len(results)} results for {len(events)} entries", retryable=True
            )
        out: dict[UUID, FailedEntry] = {}
        for event, result in zip(events, results, strict=True):
            code = result.get("ErrorCode")
            if code or not result.get("EventId"):
                code = str(code or "InternalFailure")
                out[event.event_id] = FailedEntry(
                    event.event_id,
                    event.detail_type,
                    code,
                    str(result.get("ErrorMessage", "")),
                    code in _RETRYABLE_ENTRY_CODES,
                )
        return out

    @staticmethod
    def _all_failed(
        events: Sequence[DomainEvent], code: str, message: str, *, retryable: bool
    ) -> dict[UUID, FailedEntry]:
        return {e.event_id: FailedEntry(e.event_id, e.detail_type, code, message, retryable) for e in events}

    def _backoff(self, attempt: int) -> float:
        # Full jitter (AWS architecture blog): spreads retries of concurrent relays apart.
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * (2**attempt)))  # noqa: S311


def _call_failure(exc: Exception) -> tuple[str, str, bool] | None:
    """(code, message, retryable) of a failed PutEvents call; None for an error that is not one
    (a bug: re-raised). botocore's exceptions are recognised only if botocore is loaded already
    (a botocore client was given): the lean client's path never imports it."""
    from chatflow.adapters.aws_http import AwsConnectionError, AwsServiceError

    if isinstance(exc, AwsServiceError):
        return exc.code, exc.message, exc.code not in _FATAL_CALL_CODES
    if isinstance(exc, AwsConnectionError):  # refused, timeouts: the bus may come back
        return type(exc).__name__, str(exc), True
    if "botocore.exceptions" in sys.modules:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "ClientError"))
            return code, str(error.get("Message", exc)), code not in _FATAL_CALL_CODES
        if isinstance(exc, BotoCoreError):
            return type(exc).__name__, str(exc), True
    return None


class NoBusPublisher:
    """Local runs without an EventBridge endpoint: events are logged, not sent, instead of
    waiting on AWS timeouts. Never used in the cloud (``Settings.event_bus_configured``)."""

    def publish(self, events: Sequence[DomainEvent]) -> None:
        log.debug("no event bus configured; not publishing %s", [e.detail_type for e in events])
