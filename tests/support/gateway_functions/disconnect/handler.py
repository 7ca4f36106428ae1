"""Test $disconnect: nothing to do (the gateway's event hook records the event)."""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200}
