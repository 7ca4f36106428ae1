"""Lambda authorizer for both APIs: pure JWT verification, no Postgres, no Redis, no boto3.

- WebSocket ``$connect`` (REQUEST authorizer, event has ``methodArn``): the token comes from the
  query string (``?token=``) or from the ``Sec-WebSocket-Protocol`` header
  (``chatflow.v1, bearer.<jwt>``; $connect must then echo ``chatflow.v1``). Answers an IAM policy
  allowing or denying ``execute-api:Invoke`` on the method ARN, ``principalId`` = the user id and
  ``context`` = ``Identity.to_context()``.
- HTTP API (payload 2.0, simple responses): the token comes from ``Authorization: Bearer``;
  answers ``{"isAuthorized": bool, "context": {...}}``.

Why no ban check here: this answer outlives its moment (HTTP API authorizer caching; a $connect
decision holds for the whole connection) and the cold-start budget forbids database clients;
handlers re-check every request with ``UserService.ensure_active`` (docs/auth.md).
Tokens are never logged.
"""

from __future__ import annotations

from chatflow.coldstart import pause_gc, resume_gc_after_first_call  # isort: skip

pause_gc()  # before the imports below: init runs without cyclic GC (chatflow.coldstart)

from typing import Any

from chatflow.apigw import header
from chatflow.auth.tokens import bearer_token, token_from_subprotocols
from chatflow.container import Container
from chatflow.domain.identity import Identity
from chatflow.errors import Unauthorized
from chatflow.jsonlog import JsonLogger
from chatflow.settings import get_settings

# Powertools' log line shape without Powertools' import (chatflow.jsonlog: the cold-start budget).
logger = JsonLogger(get_settings().service_name)
container = Container(get_settings())
verifier = container.token_verifier  # parses the public keys once per execution environment
if not verifier.public_keys and not verifier.oidc_issuer:
    # Misconfiguration, not an attack: every request will be denied until JWT_PUBLIC_KEYS is set.
    logger.error("no JWT public keys configured (JWT_PUBLIC_KEYS); every token will be refused")


def _verify(token: str | None) -> Identity | None:
    if not token:
        return None
    try:
        return verifier.verify(token)
    except Unauthorized as exc:
        logger.info("token refused", extra={"reason": exc.code})
        return None


def _websocket(event: dict[str, Any]) -> dict[str, Any]:
    query = event.get("queryStringParameters") or {}
    token = query.get("token") or token_from_subprotocols(header(event, "sec-websocket-protocol"))
    identity = _verify(token)
    policy: dict[str, Any] = {
        "principalId": str(identity.user_id) if identity else "anonymous",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow" if identity else "Deny",
                    "Resource": event["methodArn"],
                }
            ],
        },
    }
    if identity is not None:
        policy["context"] = identity.to_context()
    return policy


def _http(event: dict[str, Any]) -> dict[str, Any]:
    identity = _verify(bearer_token(header(event, "authorization")))
    if identity is None:
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": identity.to_context()}


@resume_gc_after_first_call
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id = (event.get("requestContext") or {}).get("requestId")
    logger.set_correlation_id(request_id)
    if "methodArn" in event:
        result = _websocket(event)
        allowed = result["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        kind = "websocket"
    else:
        result = _http(event)
        allowed = bool(result["isAuthorized"])
        kind = "http"
    logger.info("authorizer decision", extra={"api": kind, "allowed": allowed})
    return result
