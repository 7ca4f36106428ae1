"""Test authorizer: the token names the outcome (allow-<user>, deny, unauth, boom, nested).
With ``INVOCATION_LOG`` set, every event it gets is logged there (the fidelity tests read it)."""

from __future__ import annotations

import json
import os
from typing import Any


def _policy(effect: str, resource: str, user: str, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "principalId": user,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if log_path := os.environ.get("INVOCATION_LOG"):
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(
                json.dumps({"function": context.function_name, "eventId": None, "payload": event}) + "\n"
            )
    if event.get("version") == "2.0":  # HTTP API, simple response
        token = (event.get("identitySource") or [""])[0].removeprefix("Bearer ")
    else:
        token = (event.get("queryStringParameters") or {}).get("token", "")
    if token == "unauth":
        raise Exception("Unauthorized")
    if token == "boom":
        raise RuntimeError("authorizer crashed")
    user = token.removeprefix("allow-")
    ctx: dict[str, Any] = {"userId": user, "fromAuthorizer": True}
    if token == "nested":
        ctx = {"bad": {"nested": 1}}
    if event.get("version") == "2.0":
        if token == "policy":
            return _policy("Allow", event["routeArn"], "policy-user", {"userId": "policy-user"})
        return {"isAuthorized": token.startswith("allow-") or token == "nested", "context": ctx}
    effect = "Allow" if token.startswith("allow-") or token == "nested" else "Deny"
    return _policy(effect, event["methodArn"], user, ctx)
