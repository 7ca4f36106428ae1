"""Test route: always raises (the caller must see API Gateway's 500 / error frame); a frame with
``"exit": true`` kills the process mid-invoke instead (a crashed sandbox)."""

from __future__ import annotations

import json
import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if json.loads(event.get("body") or "{}").get("exit") is True:
        os._exit(3)
    raise ValueError("boom handler failed on purpose")
