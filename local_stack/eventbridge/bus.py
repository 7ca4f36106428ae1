"""An in-process EventBridge event bus: the catalog's rules (and any PutRule/PutTargets), target
delivery with each target's retry policy and dead-letter queue, an archive and replays.

What it mirrors from EventBridge (user guide: "Event retry policy and using dead-letter queues",
"Archiving and replaying events", "API destinations"; Lambda guide: "Asynchronous invocation"):

* PutEvents validation and the event envelope (version, id, detail-type, source, account, time,
  region, resources, detail). Ingestion returns at once; delivery happens on worker threads.
* Every enabled rule whose pattern matches gets the event; every target of the rule is delivered
  to independently (one failing target does not hold back another), with its Input, InputPath
  or InputTransformer applied.
* Delivery by target kind (local_stack.eventbridge.targets): a Lambda target hands the event to
  Lambda's asynchronous queue (``invoke``; local_stack.lambda_async) -- a function that raises is
  Lambda's business from then on (its EventInvokeConfig retries, its on-failure queue), NOT this
  rule's; an SQS target sends to a local queue; an API destination calls an HTTP endpoint.
* A failed delivery is retried with exponential backoff and full jitter until the target's
  ``MaximumRetryAttempts`` retries are used up or the event is older than
  ``MaximumEventAgeInSeconds``; a missing resource (``NO_RESOURCE``) or a non-retriable answer
  goes to the DLQ at once. The DLQ is a local SQS queue (the catalog's ``target_dlq_name``): the
  message is the event, with the attributes RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE,
  EXHAUSTED_RETRY_CONDITION and RETRY_ATTEMPTS. Without a DLQ the event is dropped (logged).
  The backoff is compressed locally (``Backoff``) so tests do not wait minutes.
* An archive keeps every event put on the bus (not replayed ones); a replay re-sends the events
  archived in a time window to all rules or the chosen ones, each with ``"replay-name"`` added.
* Schedules (the catalog's ``SCHEDULES``) send a "Scheduled Event" through the same target
  delivery; like AWS schedule rules they live on the default bus, so ListRules here omits them.

Direct callables: ``invoke`` may be any ``(function, event)`` callable; tests pass recorders, and
then a raising call is a failed delivery (stage 1), which is what the rule's policy covers.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local_stack.aws_errors import AwsError
from local_stack.eventbridge.api_destinations import ApiDestinations
from local_stack.eventbridge.patterns import CompiledPattern, compile_pattern
from local_stack.eventbridge.targets import (
    DeliveryError,
    Target,
    TargetRetryPolicy,
    target_input,
)
from local_stack.scheduler import Backoff, DelayedExecutor
from local_stack.sqs import LocalQueues

log = logging.getLogger("local_stack.eventbridge")

#: PutEvents: at most 10 entries per request, 256 KB for all entries of a request together.
MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024
LOCAL_ACCOUNT = "000000000000"
#: EventBridge's quota of targets per rule.
MAX_TARGETS_PER_RULE = 5
_RULE_NAME = re.compile(r"[\.\-_A-Za-z0-9]{1,64}")

#: ``invoke(function_name, event)``: hands the event to the function; raising means the delivery
#: failed (an :class:`AwsError` with code ResourceNotFoundException: the function does not exist).
Invoker = Callable[[str, dict[str, Any]], object]
#: ``(rule name, function name) -> DLQ queue name`` for the catalog's targets.
DlqNamer = Callable[[str, str], str]


class EventBusError(AwsError):
    """A request-level error, rendered as an AWS JSON error (``__type``) over HTTP."""


class ResourceNotFound(EventBusError):
    code = "ResourceNotFoundException"


class ResourceAlreadyExists(EventBusError):
    code = "ResourceAlreadyExistsException"


class EventBusUnavailable(EventBusError):
    """Injected by :class:`PutEventsFaults`: the service is failing (5xx)."""

    status = 500
    code = "InternalException"


# --- rules --------------------------------------------------------------------------------------


@dataclass
class Rule:
    name: str
    arn: str
    pattern: CompiledPattern
    targets: tuple[Target, ...] = ()
    description: str = ""
    enabled: bool = True
    #: "catalog" for the declaration's rules (present at start), None for PutRule's.
    managed_by: str | None = None

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
    """A dead-lettered event as its DLQ message holds it (body + EventBridge's attributes)."""

    id: str
    queue: str
    rule: str
    rule_arn: str
    target_id: str
    target_arn: str
    event: dict[str, Any]
    error_code: str
    error_message: str
    condition: str
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


@dataclass
class _Delivery:
    rule: Rule
    target: Target
    event: dict[str, Any]
    ingested_at: float
    attempts: int = 0


class LocalEventBus:
    """One event bus with rules, targets, DLQs and an archive. Thread-safe.

    Use as a context manager (or :meth:`start`/:meth:`close`): delivery runs on a scheduler thread
    plus a small pool of delivery threads (local_stack.scheduler).
    """

    def __init__(
        self,
        *,
        name: str = "chatflow",
        region: str = "us-east-1",
        account: str = LOCAL_ACCOUNT,
        invoke: Invoker | None = None,
        queues: LocalQueues | None = None,
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
        #: Where DLQs and queue targets live (shared with the Lambda service in the gateway).
        self.queues = queues or LocalQueues(region=region, account=account, clock=clock)
        self.api_destinations = ApiDestinations(region, account)
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.faults = PutEventsFaults()
        self.archive_name = archive_name or f"{name}-archive"
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not security
        self._rules: dict[str, Rule] = {}
        #: Schedule rules (the default bus in AWS): delivered like rules, not listed.
        self._schedule_rules: dict[str, Rule] = {}
        self._lock = threading.Lock()
        self._executor = DelayedExecutor("eventbridge-target", workers=workers, clock=clock)
        self._archive: list[ArchivedEvent] = []
        self._replays: dict[str, Replay] = {}
        self._delivered: list[tuple[str, str, str]] = []  # (rule, target id, event id)
        self._stop_schedules = threading.Event()
        self._schedule_threads: list[threading.Thread] = []
        #: Names the DLQ of a catalog Lambda target (from_catalog sets the catalog's naming).
        self.dlq_namer: DlqNamer = lambda rule, function: f"{rule}-{function}-dlq"

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def from_catalog(
        cls,
        invoke: Invoker | None = None,
        *,
        rules: Iterable[Any] | None = None,
        name: str | None = None,
        region: str | None = None,
        name_prefix: str | None = None,
        **kwargs: Any,
    ) -> LocalEventBus:
        """A bus with the rules of ``infra.catalog.EVENT_RULES`` (or ``rules``): each target a
        Lambda function handed to ``invoke(function_name, event)``, with the rule's retry policy
        and a DLQ queue named as in the cloud (``catalog.target_dlq_name(name_prefix, ...)``)."""
        from infra import catalog

        if name is None or region is None or name_prefix is None:
            from chatflow.settings import get_settings

            settings = get_settings()
            name = name or settings.event_bus_name
            region = region or settings.aws_region
            name_prefix = name_prefix or catalog.name_prefix(settings.env)
        bus = cls(name=name, region=region, invoke=invoke, **kwargs)
        bus.dlq_namer = lambda rule, function: catalog.target_dlq_name(name_prefix, rule, function)
        for rule in catalog.EVENT_RULES if rules is None else rules:
            bus.put_rule(rule.name, rule.pattern, description=rule.description, managed_by="catalog")
            bus.put_targets(
                rule.name,
                [
                    bus.lambda_target(
                        rule.name,
                        fn,
                        TargetRetryPolicy(rule.retry.max_attempts, float(rule.retry.max_event_age_s)),
                    )
                    for fn in rule.targets
                ],
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

    def default_bus_rule_arn(self, rule: str) -> str:
        """Rules on the default bus (schedules) have no bus segment in their ARN."""
        return f"arn:aws:events:{self.region}:{self.account}:rule/{rule}"

    def function_arn(self, function: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{function}"

    def lambda_target(self, rule: str, function: str, retry: TargetRetryPolicy) -> Target:
        """A catalog target: the function, the retry policy and its DLQ (created here)."""
        dlq = self.dlq_namer(rule, function)
        self.queues.create(dlq)
        return Target(
            id=function, arn=self.function_arn(function), retry=retry, dead_letter_arn=self.queues.arn(dlq)
        )

    # --- rules and targets (PutRule, PutTargets, RemoveTargets, DeleteRule) ---------------------

    def put_rule(
        self,
        name: str,
        pattern: Mapping[str, object] | str,
        *,
        description: str = "",
        enabled: bool = True,
        managed_by: str | None = None,
        targets: Sequence[str] | None = None,
        retry: TargetRetryPolicy | None = None,
    ) -> Rule:
        """Create or update a rule (its targets stay); raises InvalidEventPattern for a bad pattern.
        ``targets``: function names to target (each with ``retry`` and a DLQ), replacing the rule's."""
        if not _RULE_NAME.fullmatch(name):
            raise EventBusError(
                f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
                "Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+"
            )
        compiled = compile_pattern(pattern)
        with self._lock:
            existing = self._rules.get(name)
            rule = Rule(
                name=name,
                arn=self.rule_arn(name),
                pattern=compiled,
                targets=existing.targets if existing else (),
                description=description,
                enabled=enabled,
                managed_by=managed_by if existing is None else existing.managed_by,
            )
            self._rules[name] = rule
        if targets is not None:
            policy = retry or TargetRetryPolicy()
            with self._lock:
                rule.targets = ()
            self.put_targets(name, [self.lambda_target(name, fn, policy) for fn in targets])
        return rule

    def put_targets(self, rule_name: str, targets: Sequence[Target]) -> None:
        """Add or replace (by Id) targets of a rule."""
        with self._lock:
            rule = self._rule_locked(rule_name)
            merged = {t.id: t for t in rule.targets}
            merged.update({t.id: t for t in targets})
            if len(merged) > MAX_TARGETS_PER_RULE:
                raise EventBusError(
                    "The requested resource exceeds the maximum number allowed: "
                    f"{MAX_TARGETS_PER_RULE} targets per rule.",
                    code="LimitExceededException",
                )
            rule.targets = tuple(merged.values())

    def remove_targets(self, rule_name: str, ids: Sequence[str]) -> None:
        with self._lock:
            rule = self._rule_locked(rule_name)
            rule.targets = tuple(t for t in rule.targets if t.id not in set(ids))

    def delete_rule(self, name: str) -> None:
        with self._lock:
            rule = self._rules.get(name)
            if rule is None:
                return  # DeleteRule of a missing rule succeeds, as in EventBridge
            if rule.targets:
                raise EventBusError("Rule can't be deleted since it has targets.")
            del self._rules[name]

    def set_rule_state(self, name: str, enabled: bool) -> None:
        with self._lock:
            self._rule_locked(name).enabled = enabled

    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules.values())

    def rule(self, name: str) -> Rule:
        with self._lock:
            return self._rule_locked(name)

    def schedule_rules(self) -> list[Rule]:
        """The schedules' rules (the default bus's in AWS; not listed by ListRules here)."""
        with self._lock:
            return list(self._schedule_rules.values())

    def _rule_locked(self, name: str) -> Rule:
        try:
            return self._rules[name]
        except KeyError:
            raise ResourceNotFound(f"Rule {name} does not exist on EventBus {self.name}.") from None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> LocalEventBus:
        self._executor.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._stop_schedules.set()
        self._executor.close(timeout)
        for thread in self._schedule_threads:
            thread.join(timeout)

    def __enter__(self) -> LocalEventBus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tick(self) -> None:
        """Wake the scheduler now (tests with an injected clock call it after moving time on)."""
        self._executor.tick()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no delivery is pending or running (retries included) -- and, when the
        invoker is Lambda's asynchronous queue, until the functions ran too. True if idle."""
        deadline = time.monotonic() + timeout
        downstream = getattr(self.invoke, "wait_idle", None)
        while True:
            if not self._executor.wait_idle(max(0.0, deadline - time.monotonic())):
                return False
            if downstream is None:
                return True
            if not downstream(max(0.0, deadline - time.monotonic())):
                return False
            if not self._executor.busy:  # nothing new arrived meanwhile (a retry, a re-put)
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
        for rule in rules:
            if not rule.enabled or not rule.pattern.matches(event):
                continue
            for target in rule.targets:
                delivery = _Delivery(rule, target, copy.deepcopy(event), ingested_at)
                self._executor.submit(ingested_at, functools.partial(self._attempt, delivery))
                count += 1
        return count

    # --- delivery -----------------------------------------------------------------------------

    def _deliver(self, delivery: _Delivery) -> None:
        """One delivery attempt; raises DeliveryError."""
        target = delivery.target
        try:
            payload = target_input(target, delivery.event, delivery.rule.name, delivery.rule.arn)
        except AwsError as exc:
            raise DeliveryError("INVALID_PARAMETER", exc.message, retriable=False) from None
        kind = target.kind
        if kind == "lambda":
            if self.invoke is None:
                raise DeliveryError("NO_RESOURCE", f"no Lambda service for {target.arn}", retriable=False)
            try:
                self.invoke(str(target.function), payload)
            except AwsError as exc:
                missing = exc.code == "ResourceNotFoundException"
                code = (
                    "NO_RESOURCE" if missing else ("THROTTLING" if exc.status == 429 else "SDK_CLIENT_ERROR")
                )
                raise DeliveryError(code, exc.message, retriable=not missing) from None
            except Exception as exc:  # a direct invoker (tests): any failure is a failed delivery
                raise DeliveryError("SDK_CLIENT_ERROR", str(exc) or type(exc).__name__) from None
        elif kind == "sqs":
            if not self.queues.exists(target.resource_name):
                raise DeliveryError("NO_RESOURCE", f"Queue {target.arn} does not exist.", retriable=False)
            body = payload if isinstance(payload, str) else json.dumps(payload)
            self.queues.send(target.resource_name, body)
        elif kind == "api-destination":
            self.api_destinations.deliver(target, payload)
        else:
            raise DeliveryError(
                "NO_RESOURCE", f"Target {target.arn} is not emulated locally.", retriable=False
            )

    def _attempt(self, delivery: _Delivery) -> None:
        delivery.attempts += 1
        try:
            self._deliver(delivery)
        except DeliveryError as exc:
            log.warning(
                "eventbridge: %s -> %s attempt %d failed: %s %s",
                delivery.rule.name,
                delivery.target.id,
                delivery.attempts,
                exc.code,
                exc.message,
            )
            self._after_failure(delivery, exc)
            return
        with self._lock:
            self._delivered.append((delivery.rule.name, delivery.target.id, delivery.event["id"]))

    def _after_failure(self, delivery: _Delivery, error: DeliveryError) -> None:
        """Schedule the next retry or dead-letter the event."""
        retry = delivery.target.retry
        retries_used = delivery.attempts - 1
        now = self.clock()
        delay = self.backoff.delay(retries_used + 1, self._rng)
        if error.retriable and retries_used < retry.maximum_retry_attempts:
            if now + delay - delivery.ingested_at <= retry.maximum_event_age_s:
                self._executor.submit(now + delay, functools.partial(self._attempt, delivery))
                return
            condition = "MaximumEventAgeExhausted"
        elif error.retriable:
            condition = "MaximumRetryAttemptsExhausted"
        else:
            condition = ""  # not retried at all (a missing resource, a 4xx): no retry was exhausted
        self._dead_letter(delivery, error, condition, retries_used)

    def _dead_letter(self, delivery: _Delivery, error: DeliveryError, condition: str, retries: int) -> None:
        target = delivery.target
        queue = target.dead_letter_arn
        if queue is None or not self.queues.exists(queue):
            log.error(
                "eventbridge: %s -> %s dropped event %s (%s, %s; no dead-letter queue)",
                delivery.rule.name,
                target.id,
                delivery.event["id"],
                error.code,
                condition,
            )
            return

        def attr(value: object) -> dict[str, str]:
            return {"DataType": "String", "StringValue": str(value)}

        attributes = {
            "RULE_ARN": attr(delivery.rule.arn),
            "TARGET_ARN": attr(target.arn),
            "ERROR_CODE": attr(error.code),
            "ERROR_MESSAGE": attr(error.message[:1024]),
            "RETRY_ATTEMPTS": attr(retries),
        }
        if condition:
            attributes["EXHAUSTED_RETRY_CONDITION"] = attr(condition)
        self.queues.send(queue, json.dumps(delivery.event), attributes)
        log.error(
            "eventbridge: %s -> %s dead-lettered event %s after %d attempt(s): %s %s",
            delivery.rule.name,
            target.id,
            delivery.event["id"],
            delivery.attempts,
            error.code,
            error.message,
        )

    def delivered(self) -> list[tuple[str, str, str]]:
        """(rule, target id, event id) of every successful delivery, in order."""
        with self._lock:
            return list(self._delivered)

    # --- dead letters ---------------------------------------------------------------------------

    def dead_letters(self, target: str | None = None) -> list[DeadLetter]:
        """What the DLQs of the rules' targets (and schedules') hold, oldest first, without
        receiving it; only target ``target`` (an Id) when given. Redrive them with the same tools
        as in the cloud (``chatflow_dev.events redrive --queue-url``)."""
        rules = [*self.rules(), *self.schedule_rules()]
        letters: list[DeadLetter] = []
        seen: set[str] = set()
        for rule in rules:
            for tgt in rule.targets:
                if (target is not None and tgt.id != target) or not tgt.dead_letter_arn:
                    continue
                if not self.queues.exists(tgt.dead_letter_arn):
                    continue
                for message in self.queues.peek(tgt.dead_letter_arn):
                    attrs = {k: str(v.get("StringValue", "")) for k, v in message.attributes.items()}
                    if (
                        message.message_id in seen
                        or attrs.get("RULE_ARN") != rule.arn
                        or attrs.get("TARGET_ARN") != tgt.arn
                    ):
                        continue
                    seen.add(message.message_id)
                    letters.append(
                        DeadLetter(
                            id=message.message_id,
                            queue=self.queues.get(tgt.dead_letter_arn).name,
                            rule=rule.name,
                            rule_arn=rule.arn,
                            target_id=tgt.id,
                            target_arn=tgt.arn,
                            event=json.loads(message.body),
                            error_code=attrs.get("ERROR_CODE", ""),
                            error_message=attrs.get("ERROR_MESSAGE", ""),
                            condition=attrs.get("EXHAUSTED_RETRY_CONDITION", ""),
                            attempts=int(attrs.get("RETRY_ATTEMPTS", "0")) + 1,
                            failed_at=message.sent_at,
                        )
                    )
        return sorted(letters, key=lambda d: d.failed_at)

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
        """Send each catalog ``Schedule``'s function a "Scheduled Event" every ``rate_minutes`` (as
        an EventBridge schedule rule does: through the target's retry policy and DLQ, the catalog's
        ``Schedule.retry``); ``seconds_per_minute`` compresses time."""
        if schedules is None:
            from infra import catalog

            schedules = catalog.SCHEDULES
        for schedule in schedules:
            rule = Rule(
                name=schedule.name,
                arn=self.default_bus_rule_arn(schedule.name),
                pattern=compile_pattern({"source": ["aws.events"]}),
                targets=(
                    self.lambda_target(
                        schedule.name,
                        schedule.function,
                        TargetRetryPolicy(schedule.retry.max_attempts, float(schedule.retry.max_event_age_s)),
                    ),
                ),
                description=f"Every {schedule.rate_minutes} min: {schedule.function}",
                managed_by="catalog",
            )
            with self._lock:
                self._schedule_rules[schedule.name] = rule
            thread = threading.Thread(
                target=self._schedule_runner,
                args=(rule, schedule.rate_minutes * seconds_per_minute),
                name=f"schedule-{schedule.name}",
                daemon=True,
            )
            self._schedule_threads.append(thread)
            thread.start()

    def _schedule_runner(self, rule: Rule, interval_s: float) -> None:
        while not self._stop_schedules.wait(interval_s):
            event = self.envelope("aws.events", "Scheduled Event", {}, resources=[rule.arn])
            self._route(event, [rule], self.clock())


@contextlib.contextmanager
def running_bus(bus: LocalEventBus) -> Iterator[LocalEventBus]:
    """``with running_bus(LocalEventBus.from_catalog(invoke)) as bus: ...``"""
    bus.start()
    try:
        yield bus
    finally:
        bus.close()
