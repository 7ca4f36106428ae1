"""Local EventBridge: pattern matching, an in-process bus fed by infra/catalog.py (and PutRule /
PutTargets), target delivery with retry policies and SQS dead-letter queues, and a boto3-compatible
HTTP endpoint. See docs/local-stack-eventbridge.md.

    bus = LocalEventBus.from_catalog(invoke=lambda function_name, event: ...)
    with running_eventbridge_api(bus) as api:      # starts/stops the bus's delivery threads
        os.environ["EVENTS_ENDPOINT_URL"] = api.endpoint_url
"""

from local_stack.eventbridge.bus import (
    DeadLetter,
    EventBusError,
    Invoker,
    LocalEventBus,
    PutEventsFaults,
    Replay,
    Rule,
    running_bus,
)
from local_stack.eventbridge.http_api import (
    EventBridgeApi,
    RunningEventBridgeApi,
    running_eventbridge_api,
)
from local_stack.eventbridge.patterns import CompiledPattern, InvalidEventPattern, compile_pattern, matches
from local_stack.eventbridge.targets import Target, TargetRetryPolicy
from local_stack.scheduler import Backoff

__all__ = [
    "Backoff",
    "CompiledPattern",
    "DeadLetter",
    "EventBridgeApi",
    "EventBusError",
    "InvalidEventPattern",
    "Invoker",
    "LocalEventBus",
    "PutEventsFaults",
    "Replay",
    "Rule",
    "RunningEventBridgeApi",
    "Target",
    "TargetRetryPolicy",
    "compile_pattern",
    "matches",
    "running_bus",
    "running_eventbridge_api",
]
