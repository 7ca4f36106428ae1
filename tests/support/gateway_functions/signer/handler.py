"""Test route: echoes what the function saw (body, authorizer, environment, context, process)."""

from __future__ import annotations

import json
import os
from typing import Any

COLD_START_PID = os.getpid()
INVOCATIONS = 0


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global INVOCATIONS
    INVOCATIONS += 1
    ctx = event["requestContext"]
    answer = {
        "body": json.loads(event["body"]),
        "connectionId": ctx["connectionId"],
        "authorizer": ctx.get("authorizer"),
        "greeting": os.environ.get("GREETING"),
        "hasPrivateKey": "JWT_PRIVATE_KEY" in os.environ,
        "functionName": context.function_name,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "requestId": context.aws_request_id,
        "remainingMs": context.get_remaining_time_in_millis(),
        "pid": COLD_START_PID,
        "invocations": INVOCATIONS,
    }
    return {"statusCode": 200, "body": json.dumps(answer)}
