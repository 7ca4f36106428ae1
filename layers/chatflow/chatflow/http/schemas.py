"""Response models shared by the HTTP routes: they document the API (OpenAPI) and serialize.

A route declares the statuses its own logic answers with :func:`documented` (the success status
and its body model, and each error status, optionally with the error codes it carries); the app
(:func:`chatflow.http.app.openapi_json`) adds the statuses every route of a kind can answer
(malformed, oversized or non-JSON bodies, validation, API Gateway's authorizer and throttling
answers, a dependency outage). The success models mirror :mod:`chatflow.wire`: the property-based
contract test (tests/integration/test_openapi_contract.py) checks every answer against them.
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field

_DESCRIPTIONS = {
    400: "Malformed request: malformed_json (the body is not JSON)",
    401: "Missing, invalid, expired or revoked credentials",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    413: "Request body too large: payload_too_large",
    415: "Unsupported media type: unsupported_media_type (send application/json)",
    422: "Invalid input: invalid (details.fields lists the offending fields, never their values)",
    429: "Too many requests; see Retry-After",
    503: "A backing service is unavailable; retry",
}


class _Model(BaseModel):
    """Base of the response models: built on first use (defer_build), not at import -- a cold
    start serving one route pays for its own models only (docs/performance.md)."""

    model_config = ConfigDict(defer_build=True)


#: An error status a route declares: the status alone (any code), or ``(status, *codes)``: the
#: ``error.code`` values it carries, e.g. ``(404, "room_not_found", "message_not_found")``.
ErrorStatus = int | tuple[Any, ...]
ERROR_REF = "#/components/schemas/ErrorOut"


class ErrorDetail(_Model):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_credentials")
    message: str
    details: dict[str, Any] | None = None


class ErrorOut(_Model):
    error: ErrorDetail


class GatewayMessageOut(_Model):
    """API Gateway's own answers (authorizer, throttling, Lambda failures), e.g. 401
    ``{"message": "Unauthorized"}``: not the ``{"error": ...}`` envelope."""

    message: str = Field(examples=["Unauthorized"])


def coded_error_schema(*codes: str) -> dict[str, Any]:
    """The ``ErrorOut`` schema restricted to ``codes`` (``error.code`` is one of them)."""
    return {
        "allOf": [{"$ref": ERROR_REF}],
        "properties": {"error": {"type": "object", "properties": {"code": {"enum": list(codes)}}}},
    }


def error_codes_of(schema: dict[str, Any]) -> list[str] | None:
    """The codes a :func:`coded_error_schema` allows; None for any other schema."""
    if schema.get("allOf") != [{"$ref": ERROR_REF}]:
        return None
    enum = schema.get("properties", {}).get("error", {}).get("properties", {}).get("code", {}).get("enum")
    return list(enum) if isinstance(enum, list) else None


def error_responses(*statuses: ErrorStatus) -> dict[int, OpenAPIResponse]:
    """The ``{"error": {...}}`` bodies of ``statuses``; ``(404, "room_not_found")`` restricts
    ``error.code`` to the codes given (and names them in the description)."""
    out: dict[int, OpenAPIResponse] = {}
    for entry in statuses:
        if isinstance(entry, tuple):
            status, codes = int(entry[0]), [str(c) for c in entry[1:]]
            out[status] = {
                "description": f"{_DESCRIPTIONS[status]}: {', '.join(codes)}",
                "content": {"application/json": {"schema": coded_error_schema(*codes)}},
            }
        else:
            out[entry] = {
                "description": _DESCRIPTIONS[entry],
                "content": {"application/json": {"model": ErrorOut}},
            }
    return out


def documented(
    success: int, description: str, *errors: ErrorStatus, model: Any = None
) -> dict[int, OpenAPIResponse]:
    """``responses=`` for a route: the success status (body schema: ``model``, else the return
    annotation; no body for 204) plus the ``{"error": ...}`` bodies of ``errors``. Powertools
    documents only the statuses listed once ``responses`` is given, so the success one must be
    included."""
    ok: OpenAPIResponse = {"description": description}
    if success == 204:
        ok["content"] = {}
    elif model is not None:
        ok["content"] = {"application/json": {"model": model}}
    return {success: ok, **error_responses(*errors)}


class UserOut(_Model):
    id: str
    handle: str
    displayName: str
    role: Literal["user", "admin"]
    status: Literal["active", "banned", "deleted"]
    createdAt: str


class TokenPairOut(_Model):
    accessToken: str
    tokenType: Literal["Bearer"]
    expiresIn: int = Field(description="Seconds until the access token expires")
    refreshToken: str = Field(description="Opaque; rotated on every use")
    refreshExpiresIn: int
    user: UserOut


class BanOut(_Model):
    user: UserOut
    sessionsClosed: int | None = Field(
        description="Live WebSocket sessions closed; null when no terminator is wired or it failed"
    )


class DeleteUserOut(_Model):
    user: UserOut
    sessionsClosed: int | None = Field(
        description="Live WebSocket sessions closed; null when no terminator is wired or it failed"
    )


class UserEnvelope(_Model):
    user: UserOut


class Jwk(_Model):
    kty: str
    crv: str
    x: str
    y: str
    kid: str
    use: str
    alg: str


class JwksOut(_Model):
    keys: list[Jwk]


# --- rooms and messages (chatflow.wire.room_to_dict, message_to_dict, history_to_dict) ----------


class PeerOut(_Model):
    id: str
    handle: str
    displayName: str


class RoomOut(_Model):
    id: str
    kind: Literal["public", "private", "dm"]
    name: str | None = Field(description="null for DMs")
    topic: str
    createdBy: str
    createdAt: str
    lastSeq: int
    memberCount: int
    isMember: bool
    role: Literal["owner", "member"] | None
    lastReadSeq: int | None
    unread: int
    peer: PeerOut | None = Field(description="The other member of a DM; null for channels")


class RoomPageOut(_Model):
    rooms: list[RoomOut]
    nextCursor: str | None


class MemberOut(_Model):
    roomId: str
    userId: str
    handle: str
    role: Literal["member"]


class MessageOut(_Model):
    id: str
    roomId: str
    seq: int
    senderId: str
    senderHandle: str
    clientMessageId: str
    body: str | None = Field(description="null once deleted")
    createdAt: str
    editedAt: str | None
    deletedAt: str | None


class HistoryOut(_Model):
    messages: list[MessageOut]
    lastSeq: int
    prevCursor: int | None = Field(description="pass as before= for older messages; null: none")
    nextCursor: int | None = Field(description="pass as after= for newer messages; null: none now")


class ReadPositionOut(_Model):
    roomId: str
    lastReadSeq: int


# --- notifications (chatflow.wire.notifications_page_to_dict) -----------------------------------


class RoomUnreadOut(_Model):
    roomId: str
    unreadMessages: int
    unreadMentions: int
    lastSeq: int
    lastMessageAt: str | None
    lastSenderHandle: str | None


class NotificationOut(_Model):
    id: int
    read: bool
    kind: str
    roomId: str
    messageId: str | None
    seq: int | None
    actorId: str | None
    actorHandle: str | None
    preview: str
    createdAt: str
    readAt: str | None


class NotificationsPageOut(_Model):
    rooms: list[RoomUnreadOut]
    totalUnreadMessages: int
    totalUnreadMentions: int
    items: list[NotificationOut]
    nextBefore: int | None


class NotificationsReadOut(_Model):
    roomsCleared: int
    notificationsRead: int


# --- analytics (chatflow.wire.analytics_report_to_dict) ----------------------------------------


class DailyFiguresOut(_Model):
    date: str
    activeUsers: int
    connectionsOpened: int
    messagesCreated: int
    counters: dict[str, int]


class RoomHourOut(_Model):
    roomId: str
    hour: str
    messages: int


class AnalyticsOut(_Model):
    from_: str = Field(alias="from")
    to: str
    daily: list[DailyFiguresOut]
    roomsHourly: list[RoomHourOut]
    roomsHourlyTruncated: bool


# --- health -------------------------------------------------------------------------------------


class LiveOut(_Model):
    status: Literal["ok"]


class DependencyCheckOut(_Model):
    ok: bool
    latencyMs: float
    error: str | None = Field(default=None, description="the exception class when the check failed")


class ReadyOut(_Model):
    status: Literal["ok", "unavailable"]
    checks: dict[str, DependencyCheckOut]
