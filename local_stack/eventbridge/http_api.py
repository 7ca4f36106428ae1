"""The EventBridge API served locally (AWS JSON 1.1), for the boto3 ``events`` client.

botocore POSTs to ``/`` with ``X-Amz-Target: AWSEvents.<Operation>`` and a JSON body; errors are
``{"__type": "<Code>", "message": "..."}`` with a 4xx/5xx status, which botocore turns into
``ClientError`` (``e.response["Error"]["Code"]``). Requests are SigV4-verified (service
``events``) by the endpoint (local_stack.aws_endpoint) unless verification is off.

Operations: PutEvents (per-entry partial failures), TestEventPattern (the event must carry id,
account, source, time, region, resources and detail-type, as AWS requires), PutRule, DescribeRule,
ListRules, EnableRule, DisableRule, DeleteRule, PutTargets, ListTargetsByRule, RemoveTargets,
CreateConnection, DescribeConnection, ListConnections, DeleteConnection, CreateApiDestination,
DescribeApiDestination, ListApiDestinations, DeleteApiDestination, DescribeEventBus, ListArchives,
DescribeArchive, StartReplay, DescribeReplay, ListReplays. The same endpoint serves SQS (the DLQs,
local_stack.sqs). Local inspection (not AWS): ``GET /_local/dead-letters[?target=id]``,
``GET /_local/archive``.

    with running_eventbridge_api(LocalEventBus.from_catalog(invoke)) as api:
        boto3.client("events", endpoint_url=api.endpoint_url).put_events(Entries=[...])
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from local_stack.aws_endpoint import AwsEndpoint
from local_stack.aws_errors import AwsError
from local_stack.background import BackgroundLoop
from local_stack.eventbridge.bus import EventBusError, LocalEventBus, Replay, ResourceNotFound
from local_stack.eventbridge.patterns import InvalidEventPattern, compile_pattern
from local_stack.eventbridge.targets import parse_targets
from local_stack.sigv4 import SigV4Config
from local_stack.sqs import SqsApi

Operation = Callable[[dict[str, Any]], dict[str, Any]]

#: TestEventPattern: "the following fields are mandatory: id, account, source, time, region,
#: resources, detail-type" (EventBridge API reference, TestEventPattern, Event).
TEST_EVENT_REQUIRED = ("id", "account", "source", "time", "region", "resources", "detail-type")


def _required_str(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise EventBusError(
            f"1 validation error detected: Value null at '{name[0].lower() + name[1:]}' failed to satisfy "
            "constraint: Member must not be null"
        )
    return value


def _timestamp(params: dict[str, Any], name: str) -> float:
    value = params.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise EventBusError(f"Parameter {name} is not valid. Reason: expected a timestamp")


def _invalid_test_event() -> EventBusError:
    return EventBusError("Parameter Event is not valid.")


def validate_test_event(raw: str) -> dict[str, Any]:
    """TestEventPattern's Event: a JSON object with AWS's mandatory envelope fields."""
    try:
        event = json.loads(raw)
    except json.JSONDecodeError:
        raise _invalid_test_event() from None
    if not isinstance(event, dict) or any(key not in event for key in TEST_EVENT_REQUIRED):
        raise _invalid_test_event()
    strings = ("id", "account", "source", "time", "region", "detail-type")
    if not all(isinstance(event[k], str) for k in strings) or not isinstance(event["resources"], list):
        raise _invalid_test_event()
    try:
        datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    except ValueError:
        raise _invalid_test_event() from None
    return event


class EventBridgeApi:
    """EventBridge operations over one :class:`LocalEventBus` (a JsonService of the endpoint)."""

    target_prefix = "AWSEvents."
    signing_name = "events"
    content_type = "application/x-amz-json-1.1"

    def __init__(self, bus: LocalEventBus) -> None:
        self.bus = bus
        self._operations: dict[str, Operation] = {
            "PutEvents": self._put_events,
            "TestEventPattern": self._test_event_pattern,
            "PutRule": self._put_rule,
            "DescribeRule": self._describe_rule,
            "ListRules": self._list_rules,
            "EnableRule": self._enable_rule,
            "DisableRule": self._disable_rule,
            "DeleteRule": self._delete_rule,
            "PutTargets": self._put_targets,
            "ListTargetsByRule": self._list_targets_by_rule,
            "RemoveTargets": self._remove_targets,
            "CreateConnection": self._create_connection,
            "DescribeConnection": self._describe_connection,
            "ListConnections": self._list_connections,
            "DeleteConnection": self._delete_connection,
            "CreateApiDestination": self._create_api_destination,
            "DescribeApiDestination": self._describe_api_destination,
            "ListApiDestinations": self._list_api_destinations,
            "DeleteApiDestination": self._delete_api_destination,
            "DescribeEventBus": self._describe_event_bus,
            "ListArchives": self._list_archives,
            "DescribeArchive": self._describe_archive,
            "StartReplay": self._start_replay,
            "DescribeReplay": self._describe_replay,
            "ListReplays": self._list_replays,
        }

    def operation(self, name: str) -> Operation | None:
        found = self._operations.get(name)
        if found is None:
            return None

        def run(params: dict[str, Any]) -> dict[str, Any]:
            try:
                return found(params)
            except InvalidEventPattern as exc:
                raise AwsError(str(exc), code="InvalidEventPatternException") from None

        return run

    def add_local_routes(self, app: web.Application) -> None:
        app.router.add_get("/_local/dead-letters", self._dead_letters)
        app.router.add_get("/_local/archive", self._archive)

    # --- events ----------------------------------------------------------------------------------

    def _put_events(self, params: dict[str, Any]) -> dict[str, Any]:
        entries = params.get("Entries")
        if not isinstance(entries, list):
            raise EventBusError(
                "1 validation error detected: Value null at 'entries' failed to satisfy constraint"
            )
        return self.bus.put_events(entries)

    def _test_event_pattern(self, params: dict[str, Any]) -> dict[str, Any]:
        pattern = compile_pattern(_required_str(params, "EventPattern"))
        event = validate_test_event(_required_str(params, "Event"))
        return {"Result": pattern.matches(event)}

    def _check_bus(self, params: dict[str, Any], key: str = "EventBusName") -> None:
        name = params.get(key)
        if name not in (None, "", self.bus.name, self.bus.arn):
            raise ResourceNotFound(f"Event bus {name} does not exist.")

    # --- rules and targets -----------------------------------------------------------------------

    def _put_rule(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params)
        name = _required_str(params, "Name")
        if params.get("ScheduleExpression"):
            raise EventBusError("ScheduleExpression is supported only on the default event bus.")
        pattern = params.get("EventPattern")
        if not isinstance(pattern, str) or not pattern:
            raise EventBusError("Parameter(s) EventPattern or ScheduleExpression must be specified.")
        state = params.get("State", "ENABLED")
        if state not in ("ENABLED", "DISABLED"):
            raise EventBusError(f"Parameter State is not valid. Reason: {state} is not ENABLED or DISABLED.")
        rule = self.bus.put_rule(
            name, pattern, description=str(params.get("Description") or ""), enabled=state == "ENABLED"
        )
        return {"RuleArn": rule.arn}

    def _describe_rule(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params)
        rule = self.bus.rule(_required_str(params, "Name"))
        return rule.describe(self.bus.name) | {"CreatedBy": self.bus.account}

    def _list_rules(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params)
        prefix = params.get("NamePrefix") or ""
        rules = sorted((r for r in self.bus.rules() if r.name.startswith(prefix)), key=lambda r: r.name)
        return self._page(params, "Rules", [r.describe(self.bus.name) for r in rules])

    @staticmethod
    def _page(params: dict[str, Any], key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        limit = params.get("Limit")
        start = int(params.get("NextToken") or 0)
        end = len(items) if not isinstance(limit, int) or limit <= 0 else start + limit
        out: dict[str, Any] = {key: items[start:end]}
        if end < len(items):
            out["NextToken"] = str(end)
        return out

    def _enable_rule(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params)
        self.bus.set_rule_state(_required_str(params, "Name"), True)
        return {}

    def _disable_rule(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params)
        self.bus.set_rule_state(_required_str(params, "Name"), False)
        return {}

    def _delete_rule(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params)
        self.bus.delete_rule(_required_str(params, "Name"))
        return {}

    def _put_targets(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params)
        rule = _required_str(params, "Rule")
        self.bus.rule(rule)  # ResourceNotFoundException before validating the targets, as AWS
        self.bus.put_targets(rule, parse_targets(params.get("Targets")))
        return {"FailedEntryCount": 0, "FailedEntries": []}

    def _list_targets_by_rule(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params)
        rule = self.bus.rule(_required_str(params, "Rule"))
        return self._page(params, "Targets", [t.describe() for t in rule.targets])

    def _remove_targets(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params)
        ids = params.get("Ids")
        if not isinstance(ids, list) or not ids:
            raise EventBusError(
                "1 validation error detected: Value null at 'ids' failed to satisfy constraint"
            )
        self.bus.remove_targets(_required_str(params, "Rule"), [str(i) for i in ids])
        return {"FailedEntryCount": 0, "FailedEntries": []}

    # --- API destinations -------------------------------------------------------------------------

    def _create_connection(self, params: dict[str, Any]) -> dict[str, Any]:
        connection = self.bus.api_destinations.create_connection(params, self.bus.clock())
        described = connection.describe()
        return {
            k: described[k] for k in ("ConnectionArn", "ConnectionState", "CreationTime", "LastModifiedTime")
        }

    def _describe_connection(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.bus.api_destinations.connection(_required_str(params, "Name")).describe()

    def _list_connections(self, params: dict[str, Any]) -> dict[str, Any]:
        prefix = params.get("NamePrefix") or ""
        items = [
            c.describe() for c in self.bus.api_destinations.connections.values() if c.name.startswith(prefix)
        ]
        return self._page(params, "Connections", items)

    def _delete_connection(self, params: dict[str, Any]) -> dict[str, Any]:
        connection = self.bus.api_destinations.delete_connection(_required_str(params, "Name"))
        return {"ConnectionArn": connection.arn, "ConnectionState": "DELETING"}

    def _create_api_destination(self, params: dict[str, Any]) -> dict[str, Any]:
        destination = self.bus.api_destinations.create_destination(params, self.bus.clock())
        described = destination.describe()
        return {
            k: described[k]
            for k in ("ApiDestinationArn", "ApiDestinationState", "CreationTime", "LastModifiedTime")
        }

    def _describe_api_destination(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.bus.api_destinations.destination(_required_str(params, "Name")).describe()

    def _list_api_destinations(self, params: dict[str, Any]) -> dict[str, Any]:
        prefix = params.get("NamePrefix") or ""
        items = [
            d.describe() for d in self.bus.api_destinations.destinations.values() if d.name.startswith(prefix)
        ]
        return self._page(params, "ApiDestinations", items)

    def _delete_api_destination(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _required_str(params, "Name")
        self.bus.api_destinations.destination(name)
        del self.bus.api_destinations.destinations[name]
        return {}

    # --- bus, archive, replay --------------------------------------------------------------------

    def _describe_event_bus(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params, "Name")
        return {"Name": self.bus.name, "Arn": self.bus.arn}

    def _list_archives(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"Archives": [self.bus.describe_archive()]}

    def _describe_archive(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _required_str(params, "ArchiveName")
        if name != self.bus.archive_name:
            raise ResourceNotFound(f"Archive {name} does not exist.")
        return self.bus.describe_archive()

    def _start_replay(self, params: dict[str, Any]) -> dict[str, Any]:
        destination = params.get("Destination")
        if not isinstance(destination, dict) or destination.get("Arn") not in (self.bus.arn,):
            raise ResourceNotFound(f"Destination {destination!r} is not an event bus here ({self.bus.arn}).")
        filters = destination.get("FilterArns")
        replay = self.bus.start_replay(
            _required_str(params, "ReplayName"),
            _timestamp(params, "EventStartTime"),
            _timestamp(params, "EventEndTime"),
            rules=filters if isinstance(filters, list) and filters else None,
            description=str(params.get("Description") or ""),
            archive_arn=_required_str(params, "EventSourceArn"),
        )
        return {
            "ReplayArn": replay.arn,
            "State": "STARTING",
            "StateReason": "",
            "ReplayStartTime": replay.replay_started_at,
        }

    def _describe_replay(self, params: dict[str, Any]) -> dict[str, Any]:
        replay: Replay = self.bus.describe_replay(_required_str(params, "ReplayName"))
        return replay.describe(self.bus.arn)

    def _list_replays(self, params: dict[str, Any]) -> dict[str, Any]:
        prefix = params.get("NamePrefix") or ""
        state = params.get("State")
        return {
            "Replays": [
                {
                    k: v
                    for k, v in r.describe(self.bus.arn).items()
                    if k not in ("Description", "Destination", "ReplayArn")
                }
                for r in self.bus.replays()
                if r.name.startswith(prefix) and (state is None or r.state == state)
            ]
        }

    # --- local inspection ------------------------------------------------------------------------

    async def _dead_letters(self, request: web.Request) -> web.Response:
        letters = self.bus.dead_letters(request.query.get("target"))
        return web.json_response({"DeadLetters": [dataclasses.asdict(d) for d in letters]})

    async def _archive(self, request: web.Request) -> web.Response:
        return web.json_response({"Events": self.bus.archived()})


def events_endpoint(bus: LocalEventBus, sigv4: SigV4Config | None) -> tuple[AwsEndpoint, web.Application]:
    """The endpoint serving ``bus`` (EventBridge) and its queues (SQS), plus the local routes."""
    events = EventBridgeApi(bus)
    endpoint = AwsEndpoint([events, SqsApi(bus.queues)], sigv4=sigv4)
    app = endpoint.app()
    events.add_local_routes(app)
    return endpoint, app


@dataclass
class RunningEventBridgeApi:
    #: The endpoint (``requests`` counts the AWS API calls it served).
    api: AwsEndpoint
    bus: LocalEventBus
    host: str
    port: int

    @property
    def endpoint_url(self) -> str:
        """boto3 ``endpoint_url`` / ``EVENTS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL`` (events + sqs)."""
        return f"http://{self.host}:{self.port}"


@contextlib.contextmanager
def running_eventbridge_api(
    bus: LocalEventBus,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    start_bus: bool = True,
    sigv4: SigV4Config | None = SigV4Config(),  # noqa: B008 - frozen, shared safely
) -> Iterator[RunningEventBridgeApi]:
    """Serve ``bus`` (and its SQS queues) over HTTP in a background thread (port 0 = ephemeral);
    starts and closes the bus's delivery threads too unless ``start_bus`` is False. Requests must
    be SigV4-signed with ``sigv4``'s keys (default ``testing``/``testing``, us-east-1); None
    accepts unsigned requests."""
    from local_stack.connections import start_site

    endpoint, app = events_endpoint(bus, sigv4)
    if start_bus:
        bus.start()
    loop = BackgroundLoop("eventbridge-api")
    try:
        runner, bound = loop.run(start_site(app, host, port))
        bus.queues.endpoint_url = f"http://{host}:{bound}"
        try:
            yield RunningEventBridgeApi(endpoint, bus, host, bound)
        finally:
            loop.run(runner.cleanup())
    finally:
        loop.close()
        if start_bus:
            bus.close()
