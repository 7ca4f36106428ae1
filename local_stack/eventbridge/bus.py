"""An in-process EventBridge event bus: rules from infra/catalog.py, asynchronous delivery to
target functions with each target's retry policy, a dead-letter store, an archive and replays.

What it mirrors from EventBridge (docs: "Sending and receiving events", "Event retry policy and
using dead-letter queues", "Archiving and replaying events"):

* PutEvents validation and the event envelope (version, id, detail-type, source, account, time,
  region, resources, detail). Ingestion returns at once; delivery happens on worker threads.
* Every rule whose pattern matches gets the event; every target of the rule is delivered to
  independently (one failing target does not hold back another).
* A failed delivery is retried with exponential backoff and full jitter until the target's
  ``MaximumRetryAttempts`` (catalog ``RetryPolicy.max_attempts``) retries are used up or the event
  is older than ``MaximumEventAgeInSeconds``; then it goes to the target's dead-letter store with
  the error, as the DLQ message attributes ERROR_CODE / ERROR_MESSAGE / RULE_ARN / TARGET_ARN do.
  The backoff is compressed locally (``Backoff``) so tests do not wait minutes.
* An archive keeps every event put on the bus (not replayed ones); a replay re-sends the events
  archived in a time window to all rules or the chosen ones, each with ``"replay-name"`` added.

Differences, on purpose: a target here is a callable (the local gateway invokes the handler like
Lambda does). In AWS a Lambda target is invoked asynchronously and a handler error is retried by
Lambda's own async-invoke policy; locally a handler exception counts as a failed delivery under the
rule's retry policy, which is the stricter of the two and keeps one policy to reason about.
"""

from __future__ import annotations

import contextlib
import copy
import heapq
import itertools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local_stack.eventbridge.patterns import CompiledPattern, compile_pattern

log = logging.getLogger("local_stack.eventbridge")

#: PutEvents: at most 10 entries per request, 256 KB for all entries of a request together.
MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024
LOCAL_ACCOUNT = "000000000000"

#: ``invoke(function_name, event)``: runs the target; raising means the delivery failed.
Invoker = Callable[[str, dict[str, Any]], object]


class EventBusError(Exception):
    """A request-level error, rendered as an AWS JSON error (``__type``) over HTTP."""

    status = 400
    code = "ValidationException"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class ResourceNotFound(EventBusError):
    code = "ResourceNotFoundException"


class ResourceAlreadyExists(EventBusError):
    code = "ResourceAlreadyExistsException"


class EventBusUnavailable(EventBusError):
    """Injected by :class:`PutEventsFaults`: the service is failing (5xx)."""

    status = 500
    code = "InternalException"


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetRetryPolicy:
    """EventBridge's per-target RetryPolicy."""

    maximum_retry_attempts: int = 185
    maximum_event_age_s: float = 86400.0


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``n`` (1-based): ``min(cap, base * factor**(n-1))``, full jitter.

    EventBridge backs off over minutes to hours; the local defaults are compressed so a failing
    target goes to the DLQ in seconds, and tests pass ``Backoff(base_s=0.001)``.
    """

    base_s: float = 0.2
    factor: float = 2.0
    cap_s: float = 5.0
    jitter: bool = True

    def delay(self, retry: int, rng: random.Random) -> float:
        ceiling = min(self.cap_s, self.base_s * self.factor ** max(retry - 1, 0))
        return rng.uniform(0, ceiling) if self.jitter else ceiling


@dataclass(frozen=True)
class Target:
    id: str
    #: Function name the invoker runs.
    function: str
    arn: str
    retry: TargetRetryPolicy
    dead_letter_arn: str


@dataclass
class Rule:
    name: str
    arn: str
    pattern: CompiledPattern
    targets: tuple[Target, ...]
    description: str = ""
    enabled: bool = True

    def describe(self, bus_name: str) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Arn": self.arn,
            "EventPattern": self.pattern.to_json(),
            "State": "ENABLED" if self.enabled else "DISABLED",
            "Description": self.description,
            "EventBusName": bus_name,
        }


@dataclass(frozen=True)
class DeadLetter:
    """An event whose delivery to one target failed for good (what the DLQ would hold)."""

    id: str
    rule: str
    rule_arn: str
    target_id: str
    target_arn: str
    event: dict[str, Any]
    error_code: str
    error_message: str
    attempts: int
    failed_at: float


@dataclass(frozen=True)
class ArchivedEvent:
    archived_at: float
    event: dict[str, Any]


@dataclass
class Replay:
    name: str
    arn: str
    archive_arn: str
    start: float
    end: float
    rule_names: tuple[str, ...] | None
    description: str = ""
    state: str = "STARTING"
    state_reason: str = ""
    replay_started_at: float = 0.0
    replay_ended_at: float | None = None
    last_replayed_at: float | None = None
    replayed: int = 0

    def describe(self, bus_arn: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ReplayName": self.name,
            "ReplayArn": self.arn,
            "Description": self.description,
            "State": self.state,
            "StateReason": self.state_reason,
            "EventSourceArn": self.archive_arn,
            "Destination": {"Arn": bus_arn},
            "EventStartTime": self.start,
            "EventEndTime": self.end,
            "ReplayStartTime": self.replay_started_at,
        }
        if self.rule_names is not None:
            out["Destination"]["FilterArns"] = list(self.rule_names)
        if self.last_replayed_at is not None:
            out["EventLastReplayedTime"] = self.last_replayed_at
        if self.replay_ended_at is not None:
            out["ReplayEndTime"] = self.replay_ended_at
        return out


class PutEventsFaults:
    """Test hook: make ingestion fail on demand (EventBridge having a bad day).

    * :meth:`fail_requests` -- the next ``n`` PutEvents calls fail as a whole (HTTP 5xx,
      ``InternalException``); nothing of them reaches the bus. botocore retries 5xx itself, so
      use a large ``n`` (or :meth:`set_unavailable`) to outlast its retries.
    * :meth:`fail_entries` -- the next ``n`` entries (across calls) are rejected one by one
      (``FailedEntryCount`` > 0, per-entry ``ErrorCode``); the other entries are accepted.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._status = 500
        self._unavailable = False
        self._entries = 0
        self._entry_code = "InternalFailure"
        self._entry_message = "Internal Failure"
        self.failed_requests = 0
        self.failed_entries = 0

    def fail_requests(self, n: int = 1, *, status: int = 500) -> None:
        with self._lock:
            self._requests = n
            self._status = status

    def set_unavailable(self, unavailable: bool = True, *, status: int = 500) -> None:
        with self._lock:
            self._unavailable = unavailable
            self._status = status

    def fail_entries(
        self, n: int = 1, *, error_code: str = "InternalFailure", message: str = "Internal Failure"
    ) -> None:
        with self._lock:
            self._entries = n
            self._entry_code = error_code
            self._entry_message = message

    def clear(self) -> None:
        with self._lock:
            self._requests = self._entries = 0
            self._unavailable = False

    def check_request(self) -> None:
        with self._lock:
            if self._unavailable or self._requests > 0:
                if not self._unavailable:
                    self._requests -= 1
                self.failed_requests += 1
                raise EventBusUnavailable(
                    "Injected failure: the event bus is unavailable", status=self._status
                )

    def take_entry_failure(self) -> tuple[str, str] | None:
        with self._lock:
            if self._entries <= 0:
                return None
            self._entries -= 1
            self.failed_entries += 1
            return self._entry_code, self._entry_message


# --- PutEvents entry validation ---------------------------------------------------------------


def _iso_z(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry_size(entry: Mapping[str, Any]) -> int:
    """PutEvents entry size as AWS documents it (Time 14 bytes, UTF-8 of the strings)."""
    size = 14 if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        value = entry.get(key)
        if isinstance(value, str):
            size += len(value.encode())
    for resource in entry.get("Resources") or ():
        if isinstance(resource, str):
            size += len(resource.encode())
    return size


def _parse_time(value: object) -> float | None:
    """PutEvents ``Time``: botocore sends epoch seconds; ISO strings are accepted too."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            # Must name a real instant: NaN, infinities and years past 9999 are refused here
            # rather than failing later, when the envelope's ``time`` is rendered.
            datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            pass
        else:
            return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise EventBusError(f"Time {value!r} is not a timestamp", code="SerializationException")


# --- the bus --------------------------------------------------------------------------------------


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    rule: Rule = field(compare=False)
    target: Target = field(compare=False)
    event: dict[str, Any] = field(compare=False)
    ingested_at: float = field(compare=False)
    attempts: int = field(compare=False, default=0)


class LocalEventBus:
    """One event bus with rules, targets, DLQs and an archive. Thread-safe.

    Use as a context manager (or :meth:`start`/:meth:`close`): delivery runs on a scheduler thread
    plus a small pool of invoker threads.
    """

    def __init__(
        self,
        *,
        name: str = "chatflow",
        region: str = "us-east-1",
        account: str = LOCAL_ACCOUNT,
        invoke: Invoker | None = None,
        backoff: Backoff | None = None,
        workers: int = 4,
        archive_name: str | None = None,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> None:
        self.name = name
        self.region = region
        self.account = account
        self.invoke = invoke
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.faults = PutEventsFaults()
        self.archive_name = archive_name or f"{name}-archive"
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not security
        self._rules: dict[str, Rule] = {}
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._heap: list[_Delivery] = []
        self._running = 0
        self._seq = itertools.count()
        self._dead: dict[str, DeadLetter] = {}
        self._archive: list[ArchivedEvent] = []
        self._replays: dict[str, Replay] = {}
        self._delivered: list[tuple[str, str, str]] = []  # (rule, target id, event id)
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._scheduler: threading.Thread | None = None
        self._closed = False
        self._stop_schedules = threading.Event()
        self._schedule_threads: list[threading.Thread] = []

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def from_catalog(
        cls,
        invoke: Invoker | None = None,
        *,
        rules: Iterable[Any] | None = None,
        name: str | None = None,
        region: str | None = None,
        **kwargs: Any,
    ) -> LocalEventBus:
        """A bus with the rules of ``infra.catalog.EVENT_RULES`` (or ``rules``), each target a function
        run through ``invoke(function_name, event)``."""
        from infra import catalog

        if name is None or region is None:
            from chatflow.settings import get_settings

            settings = get_settings()
            name = name or settings.event_bus_name
            region = region or settings.aws_region
        bus = cls(name=name, region=region, invoke=invoke, **kwargs)
        for rule in catalog.EVENT_RULES if rules is None else rules:
            bus.put_rule(
                rule.name,
                rule.pattern,
                targets=rule.targets,
                retry=TargetRetryPolicy(rule.retry.max_attempts, float(rule.retry.max_event_age_s)),
                description=rule.description,
            )
        return bus

    @property
    def arn(self) -> str:
        return f"arn:aws:events:{self.region}:{self.account}:event-bus/{self.name}"

    @property
    def archive_arn(self) -> str:
        return f"arn:aws:events:{self.region}:{self.account}:archive/{self.archive_name}"

    def rule_arn(self, rule: str) -> str:
        return f"arn:aws:events:{self.region}:{self.account}:rule/{self.name}/{rule}"

    def function_arn(self, function: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{function}"

    def put_rule(
        self,
        name: str,
        pattern: Mapping[str, object] | str,
        *,
        targets: Sequence[str],
        retry: TargetRetryPolicy | None = None,
        description: str = "",
    ) -> Rule:
        """Create or replace a rule; raises InvalidEventPattern for a bad pattern."""
        retry = retry or TargetRetryPolicy()
        compiled = compile_pattern(pattern)
        rule = Rule(
            name=name,
            arn=self.rule_arn(name),
            pattern=compiled,
            description=description,
            targets=tuple(
                Target(
                    id=fn,
                    function=fn,
                    arn=self.function_arn(fn),
                    retry=retry,
                    dead_letter_arn=f"arn:aws:sqs:{self.region}:{self.account}:{name}-{fn}-dlq",
                )
                for fn in targets
            ),
        )
        with self._lock:
            self._rules[name] = rule
        return rule

    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules.values())

    def rule(self, name: str) -> Rule:
        with self._lock:
            try:
                return self._rules[name]
            except KeyError:
                raise ResourceNotFound(f"Rule {name} does not exist on EventBus {self.name}.") from None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> LocalEventBus:
        with self._lock:
            if self._scheduler is not None:
                return self
            self._closed = False
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="eventbridge-target")
            self._scheduler = threading.Thread(
                target=self._schedule_loop, name="eventbridge-scheduler", daemon=True
            )
            self._scheduler.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._stop_schedules.set()
        with self._lock:
            self._closed = True
            self._wakeup.notify_all()
            scheduler, pool = self._scheduler, self._pool
            self._scheduler = self._pool = None
        if scheduler is not None:
            scheduler.join(timeout)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for thread in self._schedule_threads:
            thread.join(timeout)

    def __enter__(self) -> LocalEventBus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tick(self) -> None:
        """Wake the scheduler now (tests with an injected clock call it after moving time on)."""
        with self._lock:
            self._wakeup.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no delivery is pending or running (retries included). True if idle."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._heap or self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    # --- ingestion ----------------------------------------------------------------------------

    def put_events(self, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The PutEvents API: validate each entry, ingest the valid ones, report per entry.

        Returns ``{"FailedEntryCount": n, "Entries": [{"EventId"} | {"ErrorCode", "ErrorMessage"}]}``.
        Request-level problems (no or too many entries, over 256 KB) raise :class:`EventBusError`.
        """
        self.faults.check_request()
        if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
            raise EventBusError("Entries must be a list", code="SerializationException")
        if not 1 <= len(entries) <= MAX_ENTRIES:
            raise EventBusError(
                f"1 validation error detected: Value at 'entries' failed to satisfy constraint: "
                f"Member must have length between 1 and {MAX_ENTRIES}, got {len(entries)}"
            )
        if sum(_entry_size(e) for e in entries if isinstance(e, Mapping)) > MAX_REQUEST_BYTES:
            raise EventBusError("Total size of the entries in the request is over the limit.")
        results: list[dict[str, Any]] = []
        for entry in entries:
            outcome = self._validate_entry(entry)
            if isinstance(outcome, dict) and "ErrorCode" in outcome:
                results.append(outcome)
                continue
            injected = self.faults.take_entry_failure()
            if injected is not None:
                results.append({"ErrorCode": injected[0], "ErrorMessage": injected[1]})
                continue
            event = outcome
            self._ingest(event)
            results.append({"EventId": event["id"]})
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedEntryCount": failed, "Entries": results}

    def put_event(
        self,
        *,
        source: str,
        detail_type: str,
        detail: Mapping[str, Any] | str,
        resources: Sequence[str] = (),
        time_: float | None = None,
    ) -> str:
        """Convenience for in-process callers: put one event, return its id or raise EventBusError."""
        entry: dict[str, Any] = {
            "Source": source,
            "DetailType": detail_type,
            "Detail": detail if isinstance(detail, str) else json.dumps(detail),
            "Resources": list(resources),
        }
        if time_ is not None:
            entry["Time"] = time_
        result = self.put_events([entry])["Entries"][0]
        if "ErrorCode" in result:
            raise EventBusError(result["ErrorMessage"], code=result["ErrorCode"])
        return str(result["EventId"])

    def _validate_entry(self, entry: object) -> dict[str, Any]:
        def invalid(field_name: str, reason: str, code: str = "InvalidArgument") -> dict[str, Any]:
            return {
                "ErrorCode": code,
                "ErrorMessage": f"Parameter {field_name} is not valid. Reason: {reason}",
            }

        if not isinstance(entry, Mapping):
            return invalid("Entry", "Entry must be an object.")
        bus = entry.get("EventBusName")
        if bus not in (None, "", self.name, self.arn):
            return {
                "ErrorCode": "ResourceNotFoundException",
                "ErrorMessage": f"Event bus {bus} does not exist.",
            }
        source, detail_type, detail = entry.get("Source"), entry.get("DetailType"), entry.get("Detail")
        if not isinstance(source, str) or not source:
            return invalid("Source", "Source is a required argument.")
        if not isinstance(detail_type, str) or not detail_type:
            return invalid("DetailType", "DetailType is a required argument.")
        if not isinstance(detail, str) or not detail:
            return invalid("Detail", "Detail is a required argument.")
        if source.startswith("aws."):
            return {
                "ErrorCode": "NotAuthorizedForSourceException",
                "ErrorMessage": "Not authorized for the source.",
            }
        try:
            parsed = json.loads(detail)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
        resources = entry.get("Resources") or []
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            return invalid("Resources", "Resources must be a list of strings.")
        try:
            at = _parse_time(entry.get("Time"))
        except EventBusError as exc:
            return invalid("Time", exc.message)
        return self.envelope(source, detail_type, parsed, resources=resources, time_=at)

    def envelope(
        self,
        source: str,
        detail_type: str,
        detail: Mapping[str, Any],
        *,
        resources: Sequence[str] = (),
        time_: float | None = None,
    ) -> dict[str, Any]:
        """An event as EventBridge delivers it to targets."""
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": self.account,
            "time": _iso_z(self.clock() if time_ is None else time_),
            "region": self.region,
            "resources": list(resources),
            "detail": dict(detail),
        }

    def _ingest(self, event: dict[str, Any]) -> None:
        now = self.clock()
        with self._lock:
            self._archive.append(ArchivedEvent(now, copy.deepcopy(event)))
        self._route(event, self.rules(), now)

    def _route(self, event: dict[str, Any], rules: Iterable[Rule], ingested_at: float) -> int:
        count = 0
        with self._lock:
            for rule in rules:
                if not rule.enabled or not rule.pattern.matches(event):
                    continue
                for target in rule.targets:
                    heapq.heappush(
                        self._heap,
                        _Delivery(
                            ingested_at, next(self._seq), rule, target, copy.deepcopy(event), ingested_at
                        ),
                    )
                    count += 1
            if count:
                self._wakeup.notify_all()
        return count

    # --- delivery -----------------------------------------------------------------------------

    def _schedule_loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed:
                    if self._heap:
                        wait = self._heap[0].due - self.clock()
                        if wait <= 0:
                            break
                        self._wakeup.wait(min(wait, 0.5))
                    else:
                        self._wakeup.wait(0.5)
                if self._closed:
                    return
                delivery = heapq.heappop(self._heap)
                self._running += 1
                pool = self._pool
            assert pool is not None
            try:
                pool.submit(self._attempt, delivery)
            except RuntimeError:  # pool shut down while closing
                with self._lock:
                    self._running -= 1
                    self._idle.notify_all()
                return

    def _attempt(self, delivery: _Delivery) -> None:
        delivery.attempts += 1
        error: tuple[str, str] | None = None
        if self.invoke is None:
            error = ("NoInvoker", f"no invoker configured for function {delivery.target.function}")
        else:
            try:
                self.invoke(delivery.target.function, copy.deepcopy(delivery.event))
            except Exception as exc:  # a target failing is data here, not a crash
                error = (type(exc).__name__, str(exc) or type(exc).__name__)
                log.warning(
                    "eventbridge: %s -> %s attempt %d failed: %s",
                    delivery.rule.name,
                    delivery.target.id,
                    delivery.attempts,
                    error[1],
                )
        with self._lock:
            self._running -= 1
            if error is None:
                self._delivered.append((delivery.rule.name, delivery.target.id, delivery.event["id"]))
            else:
                self._after_failure(delivery, error)
            if not self._heap and not self._running:
                self._idle.notify_all()

    def _after_failure(self, delivery: _Delivery, error: tuple[str, str]) -> None:
        """Schedule the next retry or dead-letter the event (caller holds the lock)."""
        retry = delivery.target.retry
        retries_used = delivery.attempts - 1
        now = self.clock()
        delay = self.backoff.delay(retries_used + 1, self._rng)
        too_old = now + delay - delivery.ingested_at > retry.maximum_event_age_s
        if retries_used >= retry.maximum_retry_attempts or too_old:
            letter = DeadLetter(
                id=str(uuid.uuid4()),
                rule=delivery.rule.name,
                rule_arn=delivery.rule.arn,
                target_id=delivery.target.id,
                target_arn=delivery.target.arn,
                event=delivery.event,
                error_code=error[0],
                error_message=error[1],
                attempts=delivery.attempts,
                failed_at=now,
            )
            self._dead[letter.id] = letter
            log.error(
                "eventbridge: %s -> %s dead-lettered after %d attempt(s): %s",
                delivery.rule.name,
                delivery.target.id,
                delivery.attempts,
                error[1],
            )
            return
        delivery.due = now + delay
        delivery.seq = next(self._seq)
        heapq.heappush(self._heap, delivery)
        self._wakeup.notify_all()

    def delivered(self) -> list[tuple[str, str, str]]:
        """(rule, target id, event id) of every successful delivery, in order."""
        with self._lock:
            return list(self._delivered)

    # --- dead letters ---------------------------------------------------------------------------

    def dead_letters(self, target: str | None = None) -> list[DeadLetter]:
        with self._lock:
            letters = sorted(self._dead.values(), key=lambda d: d.failed_at)
        return [d for d in letters if target is None or d.target_id == target]

    def redrive(self, target: str | None = None, ids: Iterable[str] | None = None) -> int:
        """Send dead letters back to their target with a fresh retry budget; returns how many."""
        wanted = set(ids) if ids is not None else None
        now = self.clock()
        count = 0
        with self._lock:
            for letter in sorted(self._dead.values(), key=lambda d: d.failed_at):
                if target is not None and letter.target_id != target:
                    continue
                if wanted is not None and letter.id not in wanted:
                    continue
                rule = self._rules.get(letter.rule)
                tgt = next((t for t in rule.targets if t.id == letter.target_id), None) if rule else None
                if rule is None or tgt is None:
                    continue  # the rule or target is gone: keep the letter
                del self._dead[letter.id]
                heapq.heappush(self._heap, _Delivery(now, next(self._seq), rule, tgt, letter.event, now))
                count += 1
            if count:
                self._wakeup.notify_all()
        return count

    # --- archive and replay ---------------------------------------------------------------------

    def archived(self, start: float | None = None, end: float | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(a.event)
                for a in self._archive
                if (start is None or a.archived_at >= start) and (end is None or a.archived_at < end)
            ]

    def describe_archive(self) -> dict[str, Any]:
        with self._lock:
            count = len(self._archive)
            size = sum(len(json.dumps(a.event)) for a in self._archive)
        return {
            "ArchiveName": self.archive_name,
            "ArchiveArn": self.archive_arn,
            "EventSourceArn": self.arn,
            "State": "ENABLED",
            "RetentionDays": 0,
            "EventCount": count,
            "SizeBytes": size,
        }

    def start_replay(
        self,
        name: str,
        start: float,
        end: float,
        *,
        rules: Sequence[str] | None = None,
        description: str = "",
        archive_arn: str | None = None,
    ) -> Replay:
        """Replay archived events with ``start <= archived_at < end`` (epoch seconds) to the bus's
        rules (or only ``rules``, by name or ARN). Events get ``"replay-name": name``. Runs in the
        background: poll :meth:`describe_replay` until State is COMPLETED."""
        if archive_arn not in (None, self.archive_arn):
            raise ResourceNotFound(f"Archive {archive_arn} does not exist.")
        if end <= start:
            raise EventBusError(
                "Parameter EventEndTime is not valid. Reason: EventEndTime must be after EventStartTime."
            )
        if end > self.clock() + 1:
            raise EventBusError(
                "Parameter EventEndTime is not valid. Reason: EventEndTime cannot be in the future."
            )
        rule_names: tuple[str, ...] | None = None
        if rules is not None:
            known = {r.arn: r.name for r in self.rules()} | {r.name: r.name for r in self.rules()}
            missing = [r for r in rules if r not in known]
            if missing:
                raise ResourceNotFound(f"Rule {missing[0]} does not exist on EventBus {self.name}.")
            rule_names = tuple(known[r] for r in rules)
        with self._lock:
            if name in self._replays:
                raise ResourceAlreadyExists(f"Replay {name} already exists.")
            replay = Replay(
                name=name,
                arn=f"arn:aws:events:{self.region}:{self.account}:replay/{name}",
                archive_arn=self.archive_arn,
                start=start,
                end=end,
                rule_names=rule_names,
                description=description,
                replay_started_at=self.clock(),
            )
            self._replays[name] = replay
        threading.Thread(target=self._run_replay, args=(replay,), name=f"replay-{name}", daemon=True).start()
        return replay

    def _run_replay(self, replay: Replay) -> None:
        with self._lock:
            replay.state = "RUNNING"
        try:
            rules = [r for r in self.rules() if replay.rule_names is None or r.name in replay.rule_names]
            for archived in self._archived_entries(replay.start, replay.end):
                event = copy.deepcopy(archived.event)
                event["replay-name"] = replay.name
                self._route(event, rules, self.clock())
                with self._lock:
                    replay.replayed += 1
                    replay.last_replayed_at = archived.archived_at
            with self._lock:
                replay.state = "COMPLETED"
        except Exception as exc:  # report, as DescribeReplay's FAILED state does
            log.exception("eventbridge: replay %s failed", replay.name)
            with self._lock:
                replay.state = "FAILED"
                replay.state_reason = str(exc)
        finally:
            with self._lock:
                replay.replay_ended_at = self.clock()

    def _archived_entries(self, start: float, end: float) -> list[ArchivedEvent]:
        with self._lock:
            return [a for a in self._archive if start <= a.archived_at < end]

    def describe_replay(self, name: str) -> Replay:
        with self._lock:
            try:
                return self._replays[name]
            except KeyError:
                raise ResourceNotFound(f"Replay {name} does not exist.") from None

    def replays(self) -> list[Replay]:
        with self._lock:
            return list(self._replays.values())

    def wait_replay(self, name: str, timeout: float = 30.0) -> Replay:
        """Block until the replay finished and its deliveries are done."""
        deadline = time.monotonic() + timeout
        while self.describe_replay(name).state in ("STARTING", "RUNNING"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self.wait_idle(max(0.0, deadline - time.monotonic()))
        return self.describe_replay(name)

    # --- schedules --------------------------------------------------------------------------------

    def start_schedules(
        self, schedules: Iterable[Any] | None = None, *, seconds_per_minute: float = 60.0
    ) -> None:
        """Invoke each catalog ``Schedule``'s function every ``rate_minutes`` with a "Scheduled
        Event" (as an EventBridge schedule rule does); ``seconds_per_minute`` compresses time."""
        if schedules is None:
            from infra import catalog

            schedules = catalog.SCHEDULES
        for schedule in schedules:
            thread = threading.Thread(
                target=self._schedule_runner,
                args=(schedule.name, schedule.function, schedule.rate_minutes * seconds_per_minute),
                name=f"schedule-{schedule.name}",
                daemon=True,
            )
            self._schedule_threads.append(thread)
            thread.start()

    def _schedule_runner(self, name: str, function: str, interval_s: float) -> None:
        while not self._stop_schedules.wait(interval_s):
            event = self.envelope("aws.events", "Scheduled Event", {}, resources=[self.rule_arn(name)])
            if self.invoke is None:
                continue
            try:
                self.invoke(function, event)
            except Exception:  # the next tick tries again, as a schedule does
                log.exception("eventbridge: schedule %s -> %s failed", name, function)


@contextlib.contextmanager
def running_bus(bus: LocalEventBus) -> Iterator[LocalEventBus]:
    """``with running_bus(LocalEventBus.from_catalog(invoke)) as bus: ...``"""
    bus.start()
    try:
        yield bus
    finally:
        bus.close()
