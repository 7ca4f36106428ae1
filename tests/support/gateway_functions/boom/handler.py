"""Test route: always raises (the caller must see API Gateway's 500 / error frame)."""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise ValueError("boom handler failed on purpose")
