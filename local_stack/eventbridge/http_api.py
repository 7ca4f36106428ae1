"""The EventBridge API served locally over HTTP (AWS JSON 1.1), for the boto3 ``events`` client.

botocore POSTs to ``/`` with ``X-Amz-Target: AWSEvents.<Operation>`` and a JSON body; errors are
``{"__type": "<Code>", "message": "..."}`` with a 4xx/5xx status, which botocore turns into
``ClientError`` (``e.response["Error"]["Code"]``). Requests are not SigV4-verified.

Operations: PutEvents (per-entry partial failures), TestEventPattern, ListRules, DescribeRule,
ListTargetsByRule, DescribeEventBus, ListArchives, DescribeArchive, StartReplay, DescribeReplay,
ListReplays. Local-only inspection (not AWS): ``GET /_local/dead-letters[?target=fn]``,
``POST /_local/redrive[?target=fn]``, ``GET /_local/archive``.

    with running_eventbridge_api(LocalEventBus.from_catalog(invoke)) as api:
        boto3.client("events", endpoint_url=api.endpoint_url).put_events(Entries=[...])
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from local_stack.background import BackgroundLoop
from local_stack.eventbridge.bus import EventBusError, LocalEventBus, Replay, ResourceNotFound
from local_stack.eventbridge.patterns import InvalidEventPattern, compile_pattern

_CONTENT_TYPE = "application/x-amz-json-1.1"
_TARGET_PREFIX = "AWSEvents."
#: Above the 256 KB PutEvents limit so the bus, not aiohttp, answers oversize requests properly.
_MAX_BODY = 2 * 1024 * 1024

Operation = Callable[[dict[str, Any]], dict[str, Any]]


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=_CONTENT_TYPE)


def _error(status: int, code: str, message: str) -> web.Response:
    return _json(status, {"__type": code, "message": message})


def _required_str(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise EventBusError(
            f"1 validation error detected: Value null at '{name}' failed to satisfy constraint"
        )
    return value


def _timestamp(params: dict[str, Any], name: str) -> float:
    value = params.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise EventBusError(f"Parameter {name} is not valid. Reason: expected a timestamp")


class EventBridgeApi:
    """The aiohttp application for one :class:`LocalEventBus`."""

    def __init__(self, bus: LocalEventBus) -> None:
        self.bus = bus
        self.requests = 0
        self._operations: dict[str, Operation] = {
            "PutEvents": self._put_events,
            "TestEventPattern": self._test_event_pattern,
            "ListRules": self._list_rules,
            "DescribeRule": self._describe_rule,
            "ListTargetsByRule": self._list_targets_by_rule,
            "DescribeEventBus": self._describe_event_bus,
            "ListArchives": self._list_archives,
            "DescribeArchive": self._describe_archive,
            "StartReplay": self._start_replay,
            "DescribeReplay": self._describe_replay,
            "ListReplays": self._list_replays,
        }

    def app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_BODY)
        self.add_routes(app)
        return app

    def add_routes(self, app: web.Application, prefix: str = "") -> None:
        """Mount on an existing application (``prefix`` e.g. "/events" when sharing a server)."""
        app.router.add_post(prefix + "/", self._dispatch)
        if prefix:
            app.router.add_post(prefix, self._dispatch)
        app.router.add_get(prefix + "/_local/dead-letters", self._dead_letters)
        app.router.add_post(prefix + "/_local/redrive", self._redrive)
        app.router.add_get(prefix + "/_local/archive", self._archive)

    async def _dispatch(self, request: web.Request) -> web.Response:
        self.requests += 1
        target = request.headers.get("X-Amz-Target", "")
        if not target.startswith(_TARGET_PREFIX):
            return _error(400, "UnknownOperationException", "Missing or unknown X-Amz-Target header")
        operation = self._operations.get(target[len(_TARGET_PREFIX) :])
        if operation is None:
            return _error(400, "UnknownOperationException", f"Operation {target} is not supported locally")
        try:
            params = json.loads(await request.read() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "SerializationException", "Request body is not valid JSON")
        if not isinstance(params, dict):
            return _error(400, "SerializationException", "Request body must be a JSON object")
        try:
            return _json(200, operation(params))
        except InvalidEventPattern as exc:
            return _error(400, "InvalidEventPatternException", str(exc))
        except EventBusError as exc:
            return _error(exc.status, exc.code, exc.message)

    # --- operations ------------------------------------------------------------------------------

    def _put_events(self, params: dict[str, Any]) -> dict[str, Any]:
        entries = params.get("Entries")
        if not isinstance(entries, list):
            raise EventBusError(
                "1 validation error detected: Value null at 'entries' failed to satisfy constraint"
            )
        return self.bus.put_events(entries)

    def _test_event_pattern(self, params: dict[str, Any]) -> dict[str, Any]:
        pattern = compile_pattern(_required_str(params, "EventPattern"))
        try:
            event = json.loads(_required_str(params, "Event"))
        except json.JSONDecodeError:
            raise EventBusError("Parameter Event is not valid. Reason: not valid JSON") from None
        if not isinstance(event, dict):
            raise EventBusError("Parameter Event is not valid. Reason: must be a JSON object")
        return {"Result": pattern.matches(event)}

    def _check_bus(self, params: dict[str, Any]) -> None:
        name = params.get("EventBusName")
        if name not in (None, "", self.bus.name, self.bus.arn):
            raise ResourceNotFound(f"Event bus {name} does not exist.")

    def _list_rules(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params)
        prefix = params.get("NamePrefix") or ""
        rules = sorted((r for r in self.bus.rules() if r.name.startswith(prefix)), key=lambda r: r.name)
        limit = params.get("Limit")
        start = int(params.get("NextToken") or 0)
        end = len(rules) if not isinstance(limit, int) or limit <= 0 else start + limit
        out: dict[str, Any] = {"Rules": [r.describe(self.bus.name) for r in rules[start:end]]}
        if end < len(rules):
            out["NextToken"] = str(end)
        return out

    def _describe_rule(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params)
        rule = self.bus.rule(_required_str(params, "Name"))
        return rule.describe(self.bus.name) | {"CreatedBy": self.bus.account}

    def _list_targets_by_rule(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_bus(params)
        rule = self.bus.rule(_required_str(params, "Rule"))
        return {
            "Targets": [
                {
                    "Id": t.id,
                    "Arn": t.arn,
                    "RetryPolicy": {
                        "MaximumRetryAttempts": t.retry.maximum_retry_attempts,
                        "MaximumEventAgeInSeconds": int(t.retry.maximum_event_age_s),
                    },
                    "DeadLetterConfig": {"Arn": t.dead_letter_arn},
                }
                for t in rule.targets
            ]
        }

    def _describe_event_bus(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("Name")
        if name not in (None, "", self.bus.name, self.bus.arn):
            raise ResourceNotFound(f"Event bus {name} does not exist.")
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

    async def _redrive(self, request: web.Request) -> web.Response:
        return web.json_response({"Redriven": self.bus.redrive(request.query.get("target"))})

    async def _archive(self, request: web.Request) -> web.Response:
        return web.json_response({"Events": self.bus.archived()})


@dataclass
class RunningEventBridgeApi:
    api: EventBridgeApi
    host: str
    port: int

    @property
    def bus(self) -> LocalEventBus:
        return self.api.bus

    @property
    def endpoint_url(self) -> str:
        """boto3 ``endpoint_url`` / ``EVENTS_ENDPOINT_URL``."""
        return f"http://{self.host}:{self.port}"


@contextlib.contextmanager
def running_eventbridge_api(
    bus: LocalEventBus, *, host: str = "127.0.0.1", port: int = 0, start_bus: bool = True
) -> Iterator[RunningEventBridgeApi]:
    """Serve ``bus`` over HTTP in a background thread (port 0 = ephemeral); starts and closes the
    bus's delivery threads too unless ``start_bus`` is False."""
    from local_stack.connections import start_site

    api = EventBridgeApi(bus)
    if start_bus:
        bus.start()
    loop = BackgroundLoop("eventbridge-api")
    try:
        runner, bound = loop.run(start_site(api.app(), host, port))
        try:
            yield RunningEventBridgeApi(api, host, bound)
        finally:
            loop.run(runner.cleanup())
    finally:
        loop.close()
        if start_bus:
            bus.close()
