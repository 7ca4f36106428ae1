"""The local gateway the fidelity tests (tests/integration/test_local_fidelity_*.py) run against:
the tiny test functions (tests/support/gateway_functions), the EventBridge/SQS/Lambda endpoint,
SigV4 verified, Lambda's and EventBridge's waits compressed, plus boto3 clients for it and the
``worker``/``single`` functions' invocation log."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_stack.gateway import GatewayConfig, RunningGateway, running_gateway
from local_stack.lambda_async import AsyncTiming
from local_stack.scheduler import Backoff
from tests.support.aws import local_client
from tests.support.gateway_catalog import build_test_catalog
from tests.support.gateway_log import EventLog, eventually

__all__ = ["EventLog", "Fidelity", "eventually", "fidelity_gateway"]

REGION = "us-east-1"
ACCOUNT = "000000000000"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
#: 1 AWS minute -> 0.1 s: Lambda's retry waits are 0.1 s then 0.2 s, a 1 h maximum age is 6 s.
TIMING = AsyncTiming(scale=1 / 600)


@dataclass
class Fidelity:
    gateway: RunningGateway
    events: EventLog
    invocation_log: Path

    @property
    def endpoint(self) -> str:
        """The AWS endpoint (EventBridge, SQS, Lambda)."""
        return self.gateway.gateway.events_url

    def client(self, service: str, **overrides: Any) -> Any:
        return local_client(service, self.endpoint, **overrides)

    def invocations(self, function: str, event_id: str | None = None) -> list[dict[str, Any]]:
        """The ``worker``/``single`` invocations logged so far (optionally of one event id)."""
        if not self.invocation_log.exists():
            return []
        lines = [json.loads(line) for line in self.invocation_log.read_text().splitlines() if line]
        return [
            line
            for line in lines
            if line["function"] == function and (event_id is None or line["eventId"] == event_id)
        ]

    def wait_idle(self, timeout: float = 30) -> None:
        assert self.gateway.gateway.bus.wait_idle(timeout)


@contextlib.contextmanager
def fidelity_gateway(tmp: Path, *, env: dict[str, str] | None = None, **overrides: Any) -> Iterator[Fidelity]:
    events = EventLog()
    log = tmp / "invocations.jsonl"
    config = GatewayConfig(
        env={
            "ENV": "test",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "INVOCATION_LOG": str(log),
            "JWT_PRIVATE_KEY": "test-only-not-a-key",
            **(env or {}),
        },
        catalog=build_test_catalog(),
        with_schedules=False,
        async_timing=TIMING,
        event_backoff=Backoff(base_s=0.01, cap_s=0.05),
        on_event=events,
        **overrides,
    )
    with running_gateway(config) as running:
        yield Fidelity(running, events, log)
