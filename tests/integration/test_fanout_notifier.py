"""ApiGatewayNotifier against the local @connections server (real HTTP, SigV4 verified by the
server) and against loopback HTTP servers that misbehave the ways a keep-alive peer can."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chatflow.adapters.apigw_connections import ApiGatewayNotifier
from chatflow.domain.realtime_models import Target
from chatflow.settings import get_settings
from local_stack.connections import RecordingBackend, RunningManagementApi, running_management_api


class FlakyBackend(RecordingBackend):
    """Answers 500 (an unhandled server error) for the first ``failures[cid]`` posts to ``cid``."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: dict[str, int] = {}
        self.attempts: dict[str, int] = {}
        self._count_lock = threading.Lock()

    async def post(self, connection_id: str, data: bytes) -> None:
        with self._count_lock:
            self.attempts[connection_id] = self.attempts.get(connection_id, 0) + 1
            remaining = self.failures.get(connection_id, 0)
            if remaining:
                self.failures[connection_id] = remaining - 1
        if remaining:
            raise RuntimeError("backend hiccup")
        await super().post(connection_id, data)


@pytest.fixture
def api() -> Iterator[RunningManagementApi]:
    with running_management_api(FlakyBackend()) as running:
        yield running


@pytest.fixture
def metrics() -> list[tuple[str, int]]:
    return []


@pytest.fixture
def notifier(
    api: RunningManagementApi, chatflow_env: dict[str, str], metrics: list[tuple[str, int]]
) -> Iterator[ApiGatewayNotifier]:
    n = ApiGatewayNotifier(
        get_settings(),
        endpoint_url=api.endpoint_url,
        max_workers=8,
        backoff_base_s=0.001,
        metric=lambda name, count: metrics.append((name, count)),
    )
    yield n
    n.close()


def _target(cid: str) -> Target:
    return Target(uuid.uuid4(), cid)


def test_gone_recipient_is_reported_as_gone_not_failed(
    api: RunningManagementApi, notifier: ApiGatewayNotifier, metrics: list[tuple[str, int]]
) -> None:
    backend: FlakyBackend = api.backend
    live, stale = _target(backend.register()), _target(backend.register())
    backend.mark_gone(stale.connection_id)
    report = notifier.send([live, stale], b'{"type":"x"}')
    assert report.delivered == [live]
    assert report.gone == [stale]  # the 410 branch is reachable (caught before ClientError)
    assert report.failed == []
    assert backend.attempts[stale.connection_id] == 1  # a 410 is never retried
    assert ("FanoutGone", 1) in metrics


def test_server_errors_are_retried_with_backoff(
    api: RunningManagementApi, notifier: ApiGatewayNotifier, metrics: list[tuple[str, int]]
) -> None:
    backend: FlakyBackend = api.backend
    target = _target(backend.register())
    backend.failures[target.connection_id] = 2
    report = notifier.send([target], b"{}")
    assert report.delivered == [target]
    assert backend.attempts[target.connection_id] == 3
    assert backend.posted(target.connection_id) == [b"{}"]
    assert metrics == []


def test_persistent_errors_are_counted_and_reported(
    api: RunningManagementApi, notifier: ApiGatewayNotifier, metrics: list[tuple[str, int]]
) -> None:
    backend: FlakyBackend = api.backend
    bad, good = _target(backend.register()), _target(backend.register())
    backend.failures[bad.connection_id] = 100
    report = notifier.send([bad, good], b"{}")
    assert report.failed == [bad]
    assert report.delivered == [good]
    assert backend.attempts[bad.connection_id] == 3
    assert ("FanoutFailed", 1) in metrics


def test_client_errors_are_not_retried(api: RunningManagementApi, notifier: ApiGatewayNotifier) -> None:
    backend: FlakyBackend = api.backend
    target = _target(backend.register())
    report = notifier.send([target], b"x" * (128 * 1024 + 1))  # 413 PayloadTooLarge
    assert report.failed == [target]
    assert backend.attempts.get(target.connection_id, 0) == 0  # refused before the backend


def test_concurrent_fan_out_delivers_each_exactly_once(
    api: RunningManagementApi, notifier: ApiGatewayNotifier
) -> None:
    backend: FlakyBackend = api.backend
    targets = [_target(backend.register()) for _ in range(120)]
    report = notifier.send(targets, b'{"n":1}')
    assert sorted(t.connection_id for t in report.delivered) == sorted(t.connection_id for t in targets)
    assert all(backend.posted(t.connection_id) == [b'{"n":1}'] for t in targets)


def test_close_connections_counts_the_open_ones(
    api: RunningManagementApi, notifier: ApiGatewayNotifier
) -> None:
    backend: FlakyBackend = api.backend
    open_ids = [backend.register() for _ in range(3)]
    closed_already = backend.register()
    backend.mark_gone(closed_already)
    assert notifier.close_connections([*open_ids, closed_already]) == 3
    assert all(backend.closed_by_api(c) for c in open_ids)


class InFlightBackend(RecordingBackend):
    """Counts posts being served at the same time (each one takes a little while, like AWS)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0

    async def post(self, connection_id: str, data: bytes) -> None:
        import asyncio

        self.in_flight += 1  # one event loop: no lock needed
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            await super().post(connection_id, data)
        finally:
            self.in_flight -= 1


def test_fan_out_is_concurrent_but_bounded_by_the_worker_count(chatflow_env: dict[str, str]) -> None:
    backend = InFlightBackend()
    with running_management_api(backend) as running:
        notifier = ApiGatewayNotifier(get_settings(), endpoint_url=running.endpoint_url, max_workers=4)
        try:
            targets = [_target(backend.register()) for _ in range(40)]
            report = notifier.send(targets, b"{}")
        finally:
            notifier.close()
    assert len(report.delivered) == 40
    assert 1 < backend.peak <= 4  # not one after another, never more than the pool


# --- the lean client's semantics (chatflow.adapters.apigw_http) -----------------------------------


class ThrottlingBackend(RecordingBackend):
    """Answers 429 TooManyRequests (API Gateway's throttle) to the first ``throttled`` posts."""

    def __init__(self, throttled: int) -> None:
        super().__init__()
        self.throttled = throttled
        self.attempts = 0

    async def post(self, connection_id: str, data: bytes) -> None:
        from aiohttp import web

        self.attempts += 1
        if self.throttled:
            self.throttled -= 1
            raise web.HTTPTooManyRequests(headers={"x-amzn-ErrorType": "LimitExceededException"})
        await super().post(connection_id, data)


def test_throttled_posts_are_retried_then_delivered_once(chatflow_env: dict[str, str]) -> None:
    backend = ThrottlingBackend(throttled=2)
    with running_management_api(backend) as running:
        notifier = ApiGatewayNotifier(
            get_settings(), endpoint_url=running.endpoint_url, max_workers=2, backoff_base_s=0.001
        )
        try:
            target = _target(backend.register())
            report = notifier.send([target], b"{}")
        finally:
            notifier.close()
    assert report.delivered == [target]
    assert backend.attempts == 3
    assert backend.posted(target.connection_id) == [b"{}"]


def test_rotated_credentials_are_used_at_once(
    chatflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint knows only the NEW key pair; the notifier was built (and used) with the old
    one in the environment, as a Lambda environment before Lambda rotated its credentials."""
    from local_stack.sigv4 import SigV4Config

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDOLD")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "old-secret")
    backend = RecordingBackend()
    with running_management_api(
        backend, sigv4=SigV4Config.single("AKIDNEW", "new-secret", "us-east-1")
    ) as api:
        notifier = ApiGatewayNotifier(get_settings(), endpoint_url=api.endpoint_url, max_workers=2)
        try:
            target = _target(backend.register())
            refused = notifier.send([target], b"1")  # 403 UnrecognizedClient: not retried
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDNEW")
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "new-secret")
            accepted = notifier.send([target], b"2")
        finally:
            notifier.close()
    assert refused.failed == [target]
    assert accepted.delivered == [target]
    assert backend.posted(target.connection_id) == [b"2"]


class _OneShotHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 server side that closes every connection after its first answer WITHOUT saying so
    (as a keep-alive connection idle-closed by the server), or never answers (``answer`` False)."""

    protocol_version = "HTTP/1.1"
    received: list[bytes]
    answer = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.append(body)
        if type(self).answer:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def one_shot_server() -> Iterator[tuple[str, type[_OneShotHandler]]]:
    handler = type("Handler", (_OneShotHandler,), {"received": [], "answer": True})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/local", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_keep_alive_connection_closed_while_idle_is_replaced_without_a_duplicate(
    chatflow_env: dict[str, str], one_shot_server: tuple[str, type[_OneShotHandler]]
) -> None:
    endpoint, handler = one_shot_server
    notifier = ApiGatewayNotifier(
        get_settings(), endpoint_url=endpoint, max_workers=1, metric=lambda n, c: None
    )
    try:
        first = notifier.send([_target("c1")], b"one")
        time.sleep(0.05)  # the server has closed the pooled connection by now
        second = notifier.send([_target("c2")], b"two")
    finally:
        notifier.close()
    assert len(first.delivered) == 1
    assert len(second.delivered) == 1
    assert handler.received == [b"one", b"two"]  # each exactly once


def test_a_request_that_got_no_answer_is_not_sent_again(
    chatflow_env: dict[str, str], one_shot_server: tuple[str, type[_OneShotHandler]]
) -> None:
    """The server read the request and vanished: it may have delivered it, so no retry."""
    endpoint, handler = one_shot_server
    handler.answer = False
    metrics: list[tuple[str, int]] = []
    notifier = ApiGatewayNotifier(
        get_settings(),
        endpoint_url=endpoint,
        max_workers=1,
        backoff_base_s=0.001,
        metric=lambda n, c: metrics.append((n, c)),
    )
    try:
        report = notifier.send([_target("c1")], b"once")
    finally:
        notifier.close()
    assert len(report.failed) == 1
    assert handler.received == [b"once"]
    assert ("FanoutFailed", 1) in metrics


def test_an_unreachable_endpoint_is_retried_then_reported_failed(chatflow_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    notifier = ApiGatewayNotifier(
        get_settings(),
        endpoint_url=f"http://127.0.0.1:{port}/local",
        max_workers=1,
        backoff_base_s=0.001,
        metric=lambda n, c: None,
    )
    try:
        report = notifier.send([_target("c1"), _target("c2")], b"x")
    finally:
        notifier.close()
    assert len(report.failed) == 2


def test_close_idle_leaves_no_connection_for_a_snapshot(
    api: RunningManagementApi, notifier: ApiGatewayNotifier
) -> None:
    """SnapStart's before-snapshot hook (Container.close_connections) closes the keep-alive
    connections; the next post opens a fresh one."""
    backend: FlakyBackend = api.backend
    targets = [_target(backend.register()) for _ in range(4)]
    notifier.send(targets, b"1")
    assert notifier.client._idle  # kept alive for the next posts
    notifier.close_idle()
    assert notifier.client._idle == []
    assert notifier.send(targets[:1], b"2").delivered == targets[:1]


def test_container_close_connections_closes_the_notifiers_idle_connections(
    api: RunningManagementApi, chatflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatflow.container import Container

    monkeypatch.setenv("WS_MANAGEMENT_ENDPOINT", api.endpoint_url)
    from tests.support.settings import reset_settings_cache

    reset_settings_cache()
    container = Container(get_settings())
    try:
        backend: FlakyBackend = api.backend
        target = _target(backend.register())
        assert container.notifier.send([target], b"x").delivered == [target]
        assert container.notifier.client._idle
        container.close_connections()
        assert container.notifier.client._idle == []
    finally:
        container.close()
        reset_settings_cache()
