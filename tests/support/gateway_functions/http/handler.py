"""Test HTTP integration: reflects the 2.0 event; /boom raises; /binary answers bytes;
``?malformed=<kind>`` answers a response API Gateway cannot use."""

from __future__ import annotations

import base64
import json
from typing import Any

MALFORMED: dict[str, dict[str, Any]] = {
    "base64": {"statusCode": 200, "body": "not base64!", "isBase64Encoded": True},
    "status": {"statusCode": 99, "body": "{}"},
    "status-text": {"statusCode": "two hundred", "body": "{}"},
    "header": {"statusCode": 200, "headers": {"x-bad": "a\r\nInjected: yes"}, "body": "{}"},
}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event["rawPath"] == "/boom":
        raise RuntimeError("http handler failed on purpose")
    if event["rawPath"] == "/binary":
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "body": base64.b64encode(b"\x00\x01\xff").decode(),
            "isBase64Encoded": True,
        }
    malformed = (event.get("queryStringParameters") or {}).get("malformed")
    if malformed is not None:
        return MALFORMED[malformed]
    if event["rawPath"] == "/plain":
        return {"hello": "world"}  # no statusCode: API Gateway makes it a 200 JSON answer
    reflected = {
        "routeKey": event["routeKey"],
        "pathParameters": event.get("pathParameters"),
        "query": event.get("queryStringParameters"),
        "authorizer": (event["requestContext"].get("authorizer") or {}).get("lambda"),
        "body": event.get("body"),
        "isBase64Encoded": event.get("isBase64Encoded"),
        "cookies": event.get("cookies"),
    }
    return {
        "statusCode": 201 if event["requestContext"]["http"]["method"] == "POST" else 200,
        "headers": {"content-type": "application/json", "x-test": "yes"},
        "body": json.dumps(reflected),
    }
