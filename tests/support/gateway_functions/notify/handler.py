"""Test route: posts to another connection through the real boto3 management client."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    body = json.loads(event["body"])
    client = boto3.client("apigatewaymanagementapi", endpoint_url=os.environ["WS_MANAGEMENT_ENDPOINT"])
    op = body.get("op", "post")
    if op == "post":
        client.post_to_connection(ConnectionId=body["to"], Data=json.dumps(body["data"]).encode())
    elif op == "delete":
        client.delete_connection(ConnectionId=body["to"])
    return {"statusCode": 200}
