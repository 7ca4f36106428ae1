"""Test $connect: ?reject=<status> refuses; ?protocol=<name> selects a subprotocol; ?sleep=<s>
takes that long (a client can give up mid-handshake)."""

from __future__ import annotations

import time
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    query = event.get("queryStringParameters") or {}
    if "sleep" in query:
        time.sleep(float(query["sleep"]))
    if "reject" in query:
        return {"statusCode": int(query["reject"]), "body": "refused"}
    if query.get("crash"):
        raise RuntimeError("connect crashed")
    if "protocol" in query:
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": query["protocol"]}}
    return {"statusCode": 200}
