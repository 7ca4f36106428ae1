"""The one outage rule (chatflow.errors.dependency_outage) that the HTTP app and every WebSocket
handler use: which failures are a dependency outage (503 / ``unavailable``) and which are bugs."""

from __future__ import annotations

import json

import psycopg
import psycopg_pool
import pytest
import redis
from redis import exceptions as rx

from chatflow.errors import UNAVAILABLE_RETRY_AFTER_MS, InvalidInput, Unavailable, dependency_outage
from chatflow.ws import protocol


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("connection refused"),
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 1.50 sec"),
        psycopg_pool.TooManyRequests("the pool has already 10 requests waiting"),
        redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        redis.TimeoutError("Timeout reading from socket"),
        getattr(rx, "OutOfMemoryError")("command not allowed when used memory > 'maxmemory'."),  # noqa: B009
        rx.ReadOnlyError("You can't write against a read only replica."),
        rx.BusyLoadingError("Redis is loading the dataset in memory"),
        rx.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's unable to persist"),
        rx.ResponseError("BUSY Redis is busy running a script."),
        rx.ResponseError("OOM command not allowed when used memory > 'maxmemory'. script: abc"),
    ],
)
def test_dependency_failures_are_outages(exc: BaseException) -> None:
    outage = dependency_outage(exc)
    assert outage is not None
    assert (outage.status, outage.code) == (503, "unavailable")
    assert outage.details == {"retryAfterMs": UNAVAILABLE_RETRY_AFTER_MS}
    assert "maxmemory" not in outage.message  # internals are logged, not answered


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bug"),
        KeyError("userId"),
        rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        rx.NoScriptError("No matching script"),
        psycopg.errors.UniqueViolation("duplicate key"),
        InvalidInput("bad"),
    ],
)
def test_bugs_and_client_errors_are_not_outages(exc: BaseException) -> None:
    assert dependency_outage(exc) is None


def test_an_adapters_unavailable_keeps_its_code_and_gets_retry_after() -> None:
    outage = dependency_outage(Unavailable("cache unavailable, retry", code="cache_unavailable"))
    assert outage is not None
    assert (outage.code, outage.details) == (
        "cache_unavailable",
        {"retryAfterMs": UNAVAILABLE_RETRY_AFTER_MS},
    )


def test_websocket_outage_reply_is_an_unavailable_frame() -> None:
    reply = protocol.outage_reply(redis.ConnectionError("down"), action="sendMessage", request_id="r1")
    assert reply is not None
    assert reply["statusCode"] == 200  # the connection stays open
    assert protocol.outage_reply(ValueError("bug")) is None
    assert json.loads(reply["body"]) == {
        "type": "error",
        "code": "unavailable",
        "message": "a backing service is unavailable; retry shortly",
        "action": "sendMessage",
        "requestId": "r1",
        "retryAfterMs": UNAVAILABLE_RETRY_AFTER_MS,
    }
