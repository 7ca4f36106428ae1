"""Test $default: answers with an error frame naming what it got."""

from __future__ import annotations

import json
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    frame = {"type": "error", "code": "unknown_action", "binary": event["isBase64Encoded"]}
    return {"statusCode": 400, "body": json.dumps(frame)}
