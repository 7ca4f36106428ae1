"""What tests of the local gateway wait on: the events it hands to route functions (an
``on_event`` hook of GatewayConfig), and asynchronous outcomes polled until they show."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class EventLog:
    """Every event the gateway hands to a route's function (route key, event). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, route_key: str, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append((route_key, event))
            self._lock.notify_all()

    def wait_for(self, match: Callable[[str, dict[str, Any]], bool], timeout: float = 15) -> dict[str, Any]:
        """The first event ``match(route_key, event)`` accepts, waiting up to ``timeout``."""

        def find() -> dict[str, Any] | None:
            return next((e for k, e in self.events if match(k, e)), None)

        with self._lock:
            self._lock.wait_for(lambda: find() is not None, timeout)
            found = find()
        assert found is not None, "no such event"
        return found

    def of_connection(self, route_key: str, connection_id: str, timeout: float = 10) -> dict[str, Any]:
        """The ``route_key`` event of one WebSocket connection."""
        return self.wait_for(
            lambda key, event: (
                key == route_key and event["requestContext"].get("connectionId") == connection_id
            ),
            timeout,
        )


def eventually(check: Callable[[], Any], timeout: float = 20, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (or the timeout); returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
