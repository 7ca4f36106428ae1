"""WebSocket event and response helpers, free of pydantic/boto3/psycopg (cold start: ``$default``
and ``ping`` import only this).

A route with a route response (every route but ``$connect``/``$disconnect``) sends the handler's
``body`` back to the caller as one frame; an invalid frame is answered with an error frame and
status 200, so the connection stays open.
"""

from __future__ import annotations

import json
from typing import Any

from chatflow.domain.identity import Identity
from chatflow.domain.validation import is_utf8
from chatflow.errors import ChatflowError, InvalidInput, PayloadTooLarge, Unauthorized, dependency_outage

#: Client -> server actions (the route keys of infra/catalog.py WS_ROUTES; a test keeps them equal).
ACTIONS: tuple[str, ...] = (
    "ping",
    "sendMessage",
    "editMessage",
    "deleteMessage",
    "joinRoom",
    "leaveRoom",
    "typing",
    "markRead",
    "resume",
    "presence",
)

#: API Gateway limits: one frame 32 KB, one message (frames reassembled) 128 KB. The gateway
#: closes the socket (1009) above 128 KB; we refuse anything above it with an error frame too.
MAX_FRAME_BYTES = 32 * 1024
MAX_MESSAGE_BYTES = 128 * 1024

#: Client-supplied correlation id echoed in the reply (optional on every frame).
MAX_REQUEST_ID_CHARS = 64

#: The WebSocket subprotocol a client offers besides its token (``bearer.<jwt>``, read by the
#: authorizer: chatflow.auth.tokens.token_from_subprotocols); $connect echoes it back.
WS_SUBPROTOCOL = "chatflow.v1"


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def reply(frame: dict[str, Any], status: int = 200) -> dict[str, Any]:
    """The Lambda proxy response whose body API Gateway sends back as a frame."""
    return {"statusCode": status, "body": dumps(frame)}


def error_frame(
    code: str, message: str, *, action: str | None = None, request_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if action:
        frame["action"] = action
    if request_id:
        frame["requestId"] = request_id
    frame.update(extra)
    return frame


def error_reply(
    exc: ChatflowError, *, action: str | None = None, request_id: str | None = None
) -> dict[str, Any]:
    """A client mistake (or a refused action) as an error frame; the connection stays open."""
    return reply(error_frame(exc.code, exc.message, action=action, request_id=request_id, **exc.details))


def outage_reply(
    exc: BaseException, *, action: str | None = None, request_id: str | None = None
) -> dict[str, Any] | None:
    """An ``unavailable`` error frame (with ``retryAfterMs``) when ``exc`` is a dependency outage
    by the rule the HTTP app uses too (chatflow.errors.dependency_outage); None for anything else
    (a bug: the handler answers ``internal_error``). The connection stays open."""
    outage = dependency_outage(exc)
    return None if outage is None else error_reply(outage, action=action, request_id=request_id)


def subprotocol_response_headers(offered: str | None) -> dict[str, str]:
    """The headers $connect returns for ``offered`` (the request's Sec-WebSocket-Protocol):
    ``{"Sec-WebSocket-Protocol": "chatflow.v1"}`` when the client offered it, else none -- a
    browser that offered subprotocols drops a handshake that picks none. Never echo the
    ``bearer.<jwt>`` entry (it would put the token in a response header)."""
    entries = [entry.strip() for entry in (offered or "").split(",")]
    return {"Sec-WebSocket-Protocol": WS_SUBPROTOCOL} if WS_SUBPROTOCOL in entries else {}


def connection_id(event: dict[str, Any]) -> str:
    cid = (event.get("requestContext") or {}).get("connectionId")
    if not isinstance(cid, str) or not cid:
        raise InvalidInput("event without requestContext.connectionId", code="bad_event")
    return cid


def identity(event: dict[str, Any]) -> Identity:
    """The caller, from the ``ws-jwt`` authorizer's context (present on every route of the
    connection). Bans are re-checked on $connect (ensure_active) and enforced on live sockets by
    DeleteConnection; a missing context means a misconfigured route, so refuse."""
    ctx = (event.get("requestContext") or {}).get("authorizer")
    if not isinstance(ctx, dict):
        raise Unauthorized("authentication required")
    try:
        return Identity.from_context(ctx)
    except (KeyError, ValueError):
        raise Unauthorized("malformed authorizer context") from None


def body_object(event: dict[str, Any]) -> dict[str, Any]:
    """The frame as a JSON object; InvalidInput/PayloadTooLarge with a precise code otherwise."""
    raw = event.get("body")
    if raw is None or raw == "":
        raise InvalidInput("empty frame: send a JSON object with an 'action'", code="invalid_json")
    if event.get("isBase64Encoded"):
        raise InvalidInput("binary frames are not supported: send JSON text", code="invalid_json")
    try:
        size = len(raw.encode()) if isinstance(raw, str) else len(raw)
    except UnicodeEncodeError:  # a text frame must be UTF-8 (RFC 6455): a client error, not a crash
        raise InvalidInput("frame is not valid UTF-8 text", code="invalid_json") from None
    if size > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(
            f"frame of {size} bytes exceeds {MAX_MESSAGE_BYTES}",
            code="frame_too_large",
            max=MAX_MESSAGE_BYTES,
        )
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting beyond the parser's depth
        raise InvalidInput("frame is not valid JSON", code="invalid_json") from None
    if not isinstance(value, dict):
        raise InvalidInput("frame must be a JSON object", code="invalid_json")
    return value


def client_text(value: object, limit: int = 64) -> str:
    """A client-supplied value made safe to echo in a frame or a log line: shortened, and lone
    surrogates replaced (a reply or log line holding one cannot be encoded as UTF-8)."""
    return str(value)[:limit].encode("utf-8", "replace").decode()


def valid_request_id(value: object) -> str | None:
    """``value`` when it is a ``requestId`` worth echoing (a 1-64 character UTF-8 string), else
    None: anything else is not echoed, and the frame is still processed (docs/protocol.md)."""
    if isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID_CHARS and is_utf8(value):
        return value
    return None


def request_id_of(frame: dict[str, Any] | None) -> str | None:
    """The client's optional ``requestId`` (echoed back), when it is a short UTF-8 string."""
    return valid_request_id(frame.get("requestId")) if frame else None


def unknown_action_reply(frame: dict[str, Any] | None) -> dict[str, Any]:
    action = frame.get("action") if frame else None
    valid = ", ".join(ACTIONS)
    if action is None:
        message = f"frame has no 'action'; valid actions: {valid}"
    else:
        message = f"unknown action {client_text(action)!r}; valid actions: {valid}"
    return reply(
        error_frame(
            "unknown_action",
            message,
            action=client_text(action) if isinstance(action, str) else None,
            request_id=request_id_of(frame),
            validActions=list(ACTIONS),
        )
    )
