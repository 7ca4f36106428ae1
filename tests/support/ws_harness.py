"""A harness for the WebSocket handler tests: real handlers, real Postgres + Redis, the local
@connections endpoint (local_stack.connections, recording backend) and the local EventBridge
endpoint (local_stack.eventbridge) -- both real HTTP servers on loopback reached through boto3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from chatflow.container import Container
from chatflow.domain.identity import Identity
from local_stack.connections import (
    RecordingBackend,
    RunningManagementApi,
    new_connection_id,
    running_management_api,
)
from local_stack.eventbridge import Backoff, LocalEventBus, RunningEventBridgeApi, running_eventbridge_api
from tests.support.apigw import lambda_context
from tests.support.events import TargetRecorder
from tests.support.lambdas import load_handler, reset_handlers
from tests.support.rooms import chat_container
from tests.support.ws_events import connect_event, disconnect_event, message_event


class EventRecorder(TargetRecorder):
    """Receives what the local bus delivers to rule targets (here: every chat event)."""

    def detail_types(self, function: str = "analytics") -> list[str]:
        with self.lock:
            return [e["detail-type"] for f, e in self.calls if f == function]

    def details(self, detail_type: str, function: str = "analytics") -> list[dict[str, Any]]:
        with self.lock:
            return [e["detail"] for f, e in self.calls if f == function and e["detail-type"] == detail_type]


@dataclass
class WsHarness:
    management: RunningManagementApi
    eventbridge: RunningEventBridgeApi
    recorder: EventRecorder
    #: The services as the handlers build them, with the harness's settings (for set-up and checks).
    container: Container
    sockets: dict[str, Identity] = field(default_factory=dict)
    _seen: dict[str, int] = field(default_factory=dict)
    #: Per connection, the indexes (in the gateway's record) of replies ``send`` returned.
    _replies: dict[str, set[int]] = field(default_factory=dict)

    @property
    def backend(self) -> RecordingBackend:
        backend: RecordingBackend = self.management.backend
        return backend

    # --- handler calls ---------------------------------------------------------------------

    def connect(self, identity: Identity, connection_id: str | None = None) -> tuple[str, dict[str, Any]]:
        """A client opens a socket: the gateway knows the connection, then $connect runs."""
        cid = self.backend.register(connection_id or new_connection_id())
        response = load_handler("ws_connect")(connect_event(identity, cid), lambda_context("ws_connect"))
        if response["statusCode"] == 200:
            self.sockets[cid] = identity
        else:
            self.backend.mark_gone(cid)  # the gateway refused the handshake
        return cid, response

    def connected(self, identity: Identity) -> str:
        cid, response = self.connect(identity)
        assert response["statusCode"] == 200, response
        return cid

    def disconnect(self, cid: str) -> dict[str, Any]:
        identity = self.sockets.pop(cid)
        self.backend.mark_gone(cid)
        result: dict[str, Any] = load_handler("ws_disconnect")(
            disconnect_event(identity, cid), lambda_context("ws_disconnect")
        )
        return result

    def send(self, cid: str, frame: dict[str, Any] | str | None, *, route_key: str | None = None) -> Any:
        """Send a frame as the client of ``cid``; returns the reply frame (None: no reply).

        As a client sees it: the route response, or else the ``ack`` the handler posted to
        ``cid`` itself over @connections during the call (sendMessage acks before the fan-out).
        A reply taken that way is not returned again by :meth:`received`."""
        identity = self.sockets[cid]
        event = message_event(identity, cid, frame, route_key=route_key)
        route = event["requestContext"]["routeKey"]
        function = {"$default": "ws_default", "ping": "ws_ping"}.get(route, "ws_messages")
        before = len(self.backend.posted(cid))
        response = load_handler(function)(event, lambda_context(function))
        assert response["statusCode"] == 200, response
        if response.get("body"):
            return json.loads(response["body"])
        posted = self.backend.posted_json(cid)
        for index in range(before, len(posted)):
            if isinstance(posted[index], dict) and posted[index].get("type") == "ack":
                self._replies.setdefault(cid, set()).add(index)
                return posted[index]
        return None

    def acks_posted(self, cid: str) -> list[dict[str, Any]]:
        """Every ack posted to ``cid`` over @connections (as opposed to route responses)."""
        return [f for f in self.backend.posted_json(cid) if isinstance(f, dict) and f.get("type") == "ack"]

    # --- what clients received -------------------------------------------------------------------

    def received(self, cid: str, type_: str | None = None) -> list[dict[str, Any]]:
        """Frames posted to ``cid`` since the last :meth:`clear` (optionally of one type)."""
        start, replies = self._seen.get(cid, 0), self._replies.get(cid, set())
        frames = [f for i, f in enumerate(self.backend.posted_json(cid)) if i >= start and i not in replies]
        return [f for f in frames if type_ is None or f.get("type") == type_]

    def clear(self) -> None:
        """Forget what was received so far (the gateway's record is left untouched)."""
        self._seen = {cid: len(posts) for cid, posts in self.backend.all_posts().items()}


@contextmanager
def ws_harness(monkeypatch: pytest.MonkeyPatch, env: dict[str, str] | None = None) -> Iterator[WsHarness]:
    """Point the handlers' settings at fresh local endpoints (plus ``env``); the handlers are
    loaded afresh (cold starts) so their containers read them, before and after."""
    recorder = EventRecorder()
    bus = LocalEventBus.from_catalog(
        recorder, name="chatflow", region="us-east-1", backoff=Backoff(base_s=0.001)
    )
    with running_management_api() as management, running_eventbridge_api(bus) as events:
        monkeypatch.setenv("WS_MANAGEMENT_ENDPOINT", management.endpoint_url)
        monkeypatch.setenv("EVENTS_ENDPOINT_URL", events.endpoint_url)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        reset_handlers()
        try:
            with chat_container() as container:
                yield WsHarness(management, events, recorder, container)
        finally:
            monkeypatch.undo()
            reset_handlers()
