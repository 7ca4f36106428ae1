"""Response models shared by the HTTP routes: they document the API (OpenAPI) and serialize.

``error_responses(...)`` documents the ``{"error": {...}}`` shape for the given status codes, so
clients generated from /openapi.json know every error body. Other areas may use them too.
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, Field

_DESCRIPTIONS = {
    400: "Malformed request (e.g. body is not JSON)",
    401: "Missing, invalid, expired or revoked credentials",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input; details.fields lists the offending fields",
    429: "Too many requests; see Retry-After",
    503: "A backing service is unavailable; retry",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_credentials")
    message: str
    details: dict[str, Any] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int, OpenAPIResponse]:
    return {
        status: {"description": _DESCRIPTIONS[status], "content": {"application/json": {"model": ErrorOut}}}
        for status in statuses
    }


def documented(success: int, description: str, *errors: int) -> dict[int, OpenAPIResponse]:
    """``responses=`` for a route: the success status (schema from the return annotation; no body
    for 204) plus the ``{"error": ...}`` bodies of ``errors``. Powertools documents only the
    statuses listed once ``responses`` is given, so the success one must be included."""
    ok: OpenAPIResponse = {"description": description}
    if success == 204:
        ok["content"] = {}
    return {success: ok, **error_responses(*errors)}


class UserOut(BaseModel):
    id: str
    handle: str
    displayName: str
    role: Literal["user", "admin"]
    status: Literal["active", "banned", "deleted"]
    createdAt: str


class TokenPairOut(BaseModel):
    accessToken: str
    tokenType: Literal["Bearer"]
    expiresIn: int = Field(description="Seconds until the access token expires")
    refreshToken: str = Field(description="Opaque; rotated on every use")
    refreshExpiresIn: int
    user: UserOut


class BanOut(BaseModel):
    user: UserOut
    sessionsClosed: int | None = Field(
        description="Live WebSocket sessions closed; null when no terminator is wired or it failed"
    )


class UserEnvelope(BaseModel):
    user: UserOut


class Jwk(BaseModel):
    kty: str
    crv: str
    x: str
    y: str
    kid: str
    use: str
    alg: str


class JwksOut(BaseModel):
    keys: list[Jwk]
