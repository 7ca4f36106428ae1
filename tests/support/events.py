"""Helpers for the event tests: the local EventBridge emulator over HTTP (EVENTBUS-WEB's
``local_stack.eventbridge``), a boto3 ``events`` client against it, EventBridge envelopes and
users/rooms inserted straight into this run's database.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg

from chatflow.events.schemas import DomainEvent
from infra import catalog
from local_stack.eventbridge import Backoff, LocalEventBus, running_eventbridge_api
from local_stack.eventbridge.http_api import RunningEventBridgeApi
from local_stack.lambda_async import AsyncLambda, AsyncTiming
from local_stack.sqs import LocalQueues
from tests.support import rooms
from tests.support.aws import local_client

FAST = Backoff(base_s=0.001, cap_s=0.005)

if TYPE_CHECKING:
    from chatflow.container import Container


def events_client(endpoint_url: str) -> Any:
    return local_client("events", endpoint_url)


def sqs_client(endpoint_url: str) -> Any:
    """A boto3 SQS client for the local endpoint (the emulator serves SQS beside EventBridge)."""
    return local_client("sqs", endpoint_url)


class TargetRecorder:
    """A bus target invoker recording every ``(function, event)``; a function named in
    ``failing`` raises (its remaining failures count down; -1 fails forever)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failing: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, function: str, event: dict[str, Any]) -> object:
        with self.lock:
            self.calls.append((function, event))
            left = self.failing.get(function, 0)
            if left:
                self.failing[function] = left - 1 if left > 0 else left
                raise RuntimeError(f"{function} is down")
        return {"ok": True}

    def events_for(self, function: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for f, e in self.calls if f == function]


@contextmanager
def flush_relay_replaced(container: Container, relay: Any) -> Iterator[None]:
    """Make ``container``'s after-commit flush run (as if a bus were configured) through ``relay``,
    an object with ``run_once(limit) -> RelayResult`` standing in for the real relay."""
    container.override(flush_relay=relay)
    outbox = container.outbox
    was = outbox.enabled
    outbox.enabled = True
    try:
        yield
    finally:
        outbox.enabled = was


#: Lambda's async-invocation waits compressed 600x (1 min -> 0.1 s, 1 h maximum age -> 6 s).
FAST_LAMBDA = AsyncTiming(scale=1 / 600)
NAME_PREFIX = "chatflow-test"


@contextmanager
def emulator(
    invoke: Callable[[str, dict[str, Any]], Any] | None = None,
    *,
    rules: Any = None,
    timing: AsyncTiming = FAST_LAMBDA,
) -> Iterator[RunningEventBridgeApi]:
    """The catalog's rules on a local bus served over HTTP (EventBridge + its SQS queues);
    ``invoke(function, event)`` runs a target function in-process, behind Lambda's asynchronous
    queue as in AWS (a raising function is retried per its catalog ``AsyncInvoke``, then recorded
    in its on-failure queue ``catalog.async_failure_queue_name(NAME_PREFIX, fn)``).

    Without ``invoke`` the bus has no rules (``rules=()``): events are only archived.
    """
    queues = LocalQueues()
    async_lambda: AsyncLambda | None = None
    if invoke is not None:
        async_lambda = AsyncLambda.for_functions(
            invoke, catalog.FUNCTIONS, queues=queues, name_prefix=NAME_PREFIX, timing=timing
        ).start()
    bus = LocalEventBus.from_catalog(
        async_lambda,
        rules=rules if rules is not None else (None if invoke else ()),
        name="chatflow",
        region="us-east-1",
        name_prefix=NAME_PREFIX,
        queues=queues,
        backoff=FAST,
    )
    try:
        with running_eventbridge_api(bus) as api:
            yield api
    finally:
        if async_lambda is not None:
            async_lambda.close()


def archived_event_ids(api: RunningEventBridgeApi) -> list[str]:
    """event_id of every event the bus accepted (the archive keeps them all, replays excluded)."""
    return [str(e["detail"]["event_id"]) for e in api.bus.archived()]


def envelope(
    event: DomainEvent, *, replay_name: str | None = None, source: str = "chatflow.chat"
) -> dict[str, Any]:
    """The event as EventBridge hands it to a Lambda target."""
    out: dict[str, Any] = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": event.detail_type,
        "source": source,
        "account": "000000000000",
        "time": event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [],
        "detail": event.detail(),
    }
    if replay_name:
        out["replay-name"] = replay_name
    return out


def insert_user(conn: psycopg.Connection[Any], handle: str | None = None, *, status: str = "active") -> UUID:
    """``tests.support.rooms.insert_user`` for callers that only need the id."""
    return rooms.insert_user(conn, handle=handle, status=status).user_id


def insert_room(
    conn: psycopg.Connection[Any], owner: UUID, members: list[UUID], *, kind: str = "public"
) -> UUID:
    room_id = uuid.uuid4()
    if kind == "dm":
        low, high = sorted([owner, *members], key=str)[:2]
        conn.execute(
            "INSERT INTO rooms (id, kind, created_by, dm_user_low, dm_user_high) "
            "VALUES (%s, 'dm', %s, %s, %s)",
            (room_id, owner, low, high),
        )
    else:
        conn.execute(
            "INSERT INTO rooms (id, kind, name, created_by) VALUES (%s, %s, %s, %s)",
            (room_id, kind, f"room-{secrets.token_hex(4)}", owner),
        )
    conn.execute(
        "INSERT INTO memberships (room_id, user_id, role) VALUES (%s, %s, 'owner')", (room_id, owner)
    )
    for member in members:
        conn.execute("INSERT INTO memberships (room_id, user_id) VALUES (%s, %s)", (room_id, member))
    return room_id


def now() -> datetime:
    return datetime.now(UTC)
