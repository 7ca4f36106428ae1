"""ApiGatewayNotifier against the local @connections server (real HTTP, real boto3 client)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

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
