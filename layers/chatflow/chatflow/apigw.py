"""API Gateway event helpers shared by both APIs (WebSocket and HTTP) and the authorizer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header of an API Gateway event, case-insensitively (``name`` in lower case)."""
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None
