"""Lambda's asynchronous invocation queue, as EventBridge targets (and ``Invoke`` with
``InvocationType=Event``) meet it in AWS.

Two stages, as in the cloud ("How Lambda handles errors and retries with asynchronous
invocation", Lambda developer guide):

1. Handing the event to Lambda (:meth:`AsyncLambda.submit`, what an EventBridge target delivery
   is) succeeds as soon as Lambda queued it. Only that hand-off is covered by the rule target's
   RetryPolicy and DLQ: an unknown function (``ResourceNotFoundException``) or Lambda being
   unavailable (``faults``) fail it.
2. Lambda then runs the function from its queue with the function's EventInvokeConfig (the
   catalog's ``AsyncInvoke``): a function error (it raised, timed out, crashed) is retried
   ``max_retry_attempts`` times, waiting 1 then 2 minutes; a throttle (reserved concurrency in
   use) is retried with a backoff from 1 s up to 5 minutes without using up a retry; both only
   while the event is younger than ``max_event_age_s``. Then Lambda sends an invocation record
   (``version``, ``timestamp``, ``requestContext.condition`` ``RetriesExhausted`` or
   ``EventAgeExceeded``, ``approximateInvokeCount``, ``requestPayload``, ``responseContext``,
   ``responsePayload``) to the on-failure destination -- here the local SQS queue named by
   ``infra.catalog.async_failure_queue_name`` -- or drops the event when there is none.

Durations are compressed by :class:`AsyncTiming` (default: one AWS minute is one local second).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infra.catalog import AsyncInvoke, Function, async_failure_queue_name
from local_stack.aws_errors import AwsError
from local_stack.lambda_runtime import FunctionError, Throttled
from local_stack.scheduler import Backoff, DelayedExecutor
from local_stack.sqs import LocalQueues

log = logging.getLogger("local_stack.lambda_async")

#: What Lambda applies without an EventInvokeConfig: 2 retries, 6 hours, no destination.
AWS_DEFAULT = AsyncInvoke(max_retry_attempts=2, max_event_age_s=21600)
#: Waits before the 1st and 2nd retry of a function error (AWS: one, then two minutes).
_ERROR_RETRY_DELAYS_S = (60.0, 120.0)

#: ``run(function_name, event)``: one synchronous invocation; raises FunctionError (Throttled).
Runner = Callable[[str, dict[str, Any]], object]


class FunctionNotFound(AwsError):
    status = 404
    code = "ResourceNotFoundException"


class LambdaUnavailable(AwsError):
    status = 500
    code = "ServiceException"


@dataclass(frozen=True)
class AsyncTiming:
    """AWS's async-invocation durations times ``scale`` (1/60: a minute becomes a second)."""

    scale: float = 1 / 60

    def error_retry_delay(self, retry: int) -> float:
        return _ERROR_RETRY_DELAYS_S[min(retry, len(_ERROR_RETRY_DELAYS_S)) - 1] * self.scale

    def throttle_backoff(self) -> Backoff:
        # AWS: from 1 second after the first attempt, exponentially, to at most 5 minutes.
        return Backoff(base_s=1.0 * self.scale, factor=2.0, cap_s=300.0 * self.scale, jitter=True)

    def max_age(self, config: AsyncInvoke) -> float:
        return config.max_event_age_s * self.scale


@dataclass
class _Invocation:
    request_id: str
    function: str
    event: dict[str, Any]
    received_at: float
    #: Times the function actually ran (throttled attempts do not count).
    invoked: int = 0
    throttles: int = 0
    last_error: FunctionError | None = None


@dataclass
class AsyncStats:
    received: int = 0
    succeeded: int = 0
    function_errors: int = 0
    throttled: int = 0
    #: Records sent to an on-failure queue, per condition.
    failed: dict[str, int] = field(default_factory=dict)
    dropped: int = 0


class AsyncFaults:
    """Test hook: Lambda refusing asynchronous invokes (stage 1 fails: EventBridge retries)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._remaining = 0
        self.rejected = 0

    def fail_next(self, n: int = 1) -> None:
        with self._lock:
            self._remaining = n

    def check(self) -> None:
        with self._lock:
            if self._remaining == 0:
                return
            if self._remaining > 0:
                self._remaining -= 1
            self.rejected += 1
        raise LambdaUnavailable("Injected failure: the Lambda service is unavailable")


class AsyncLambda:
    """The asynchronous invocation queue of every local function. Thread-safe; ``submit`` (or
    calling the object) is an EventBridge Lambda target's delivery."""

    def __init__(
        self,
        run: Runner,
        *,
        configs: Mapping[str, AsyncInvoke | None],
        queues: LocalQueues,
        failure_queue: Callable[[str], str | None],
        region: str = "us-east-1",
        account: str = "000000000000",
        timing: AsyncTiming | None = None,
        workers: int = 4,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> None:
        self.run = run
        #: Function name -> its catalog AsyncInvoke (None: AWS's defaults, no destination).
        self.configs = dict(configs)
        self.queues = queues
        self.failure_queue = failure_queue
        self.region = region
        self.account = account
        self.timing = timing or AsyncTiming()
        self.clock = clock
        self.faults = AsyncFaults()
        self.stats: dict[str, AsyncStats] = {name: AsyncStats() for name in self.configs}
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not security
        self._executor = DelayedExecutor("lambda-async", workers=workers, clock=clock)
        self._lock = threading.Lock()

    @classmethod
    def for_functions(
        cls,
        run: Runner,
        functions: Iterable[Function],
        *,
        queues: LocalQueues,
        name_prefix: str,
        **kwargs: Any,
    ) -> AsyncLambda:
        """The queue for catalog functions: each with its ``AsyncInvoke`` and, when it has one, an
        on-failure queue (created in ``queues``) named as the CDK app names it."""
        by_name = {fn.name: fn for fn in functions}

        def failure_queue(name: str) -> str | None:
            fn = by_name.get(name)
            return async_failure_queue_name(name_prefix, name) if fn and fn.async_invoke else None

        for name in by_name:
            if (queue := failure_queue(name)) is not None:
                queues.create(queue)
        configs = {name: fn.async_invoke for name, fn in by_name.items()}
        return cls(run, configs=configs, queues=queues, failure_queue=failure_queue, **kwargs)

    def start(self) -> AsyncLambda:
        self._executor.start()
        return self

    def close(self) -> None:
        self._executor.close()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        return self._executor.wait_idle(timeout)

    def function_arn(self, function: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{function}"

    # --- stage 1: Lambda accepts the event --------------------------------------------------
    def submit(self, function: str, event: dict[str, Any]) -> str:
        """Queue ``event`` for ``function`` (202 Accepted); returns the request id."""
        if function not in self.configs:
            raise FunctionNotFound(f"Function not found: {self.function_arn(function)}")
        self.faults.check()
        invocation = _Invocation(str(uuid.uuid4()), function, event, self.clock())
        with self._lock:
            self.stats[function].received += 1
        self._executor.submit(invocation.received_at, lambda: self._attempt(invocation))
        return invocation.request_id

    __call__ = submit

    # --- stage 2: Lambda runs it ------------------------------------------------------------
    def _config(self, function: str) -> AsyncInvoke:
        return self.configs.get(function) or AWS_DEFAULT

    def _attempt(self, invocation: _Invocation) -> None:
        config = self._config(invocation.function)
        if self.clock() - invocation.received_at > self.timing.max_age(config):
            self._give_up(invocation, "EventAgeExceeded")
            return
        stats = self.stats[invocation.function]
        try:
            self.run(invocation.function, json.loads(json.dumps(invocation.event)))
        except Throttled:
            invocation.throttles += 1
            with self._lock:
                stats.throttled += 1
            delay = self.timing.throttle_backoff().delay(invocation.throttles, self._rng)
            self._retry(invocation, delay)
            return
        except Exception as exc:  # the function failed (a runner other than the runtime: tests)
            error = (
                exc
                if isinstance(exc, FunctionError)
                else FunctionError(invocation.function, type(exc).__name__, str(exc))
            )
            invocation.invoked += 1
            invocation.last_error = error
            with self._lock:
                stats.function_errors += 1
            if invocation.invoked > config.max_retry_attempts:
                self._give_up(invocation, "RetriesExhausted")
            else:
                self._retry(invocation, self.timing.error_retry_delay(invocation.invoked))
            return
        with self._lock:
            stats.succeeded += 1

    def _retry(self, invocation: _Invocation, delay: float) -> None:
        due = self.clock() + delay
        if due - invocation.received_at > self.timing.max_age(self._config(invocation.function)):
            self._give_up(invocation, "EventAgeExceeded")
            return
        self._executor.submit(due, lambda: self._attempt(invocation))

    def record(self, invocation: _Invocation, condition: str) -> dict[str, Any]:
        """The invocation record Lambda sends to a destination (docs: "Retaining records of
        asynchronous invocations")."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        record: dict[str, Any] = {
            "version": "1.0",
            "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": invocation.request_id,
                "functionArn": f"{self.function_arn(invocation.function)}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": invocation.invoked,
            },
            "requestPayload": invocation.event,
        }
        error = invocation.last_error
        if error is not None:
            record["responseContext"] = {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            }
            record["responsePayload"] = {
                "errorMessage": error.message,
                "errorType": error.error_type,
                "requestId": invocation.request_id,
                "stackTrace": error.stack_trace,
            }
        return record

    def _give_up(self, invocation: _Invocation, condition: str) -> None:
        queue = self.failure_queue(invocation.function) if invocation.function in self.configs else None
        stats = self.stats[invocation.function]
        if queue is None or not self.queues.exists(queue):
            with self._lock:
                stats.dropped += 1
            log.error(
                "lambda: %s dropped an asynchronous event (%s, no on-failure destination)",
                invocation.function,
                condition,
            )
            return
        self.queues.send(queue, json.dumps(self.record(invocation, condition)))
        with self._lock:
            stats.failed[condition] = stats.failed.get(condition, 0) + 1
        log.error(
            "lambda: %s asynchronous invocation %s failed (%s after %d invocation(s)); record sent to %s",
            invocation.function,
            invocation.request_id,
            condition,
            invocation.invoked,
            queue,
        )
