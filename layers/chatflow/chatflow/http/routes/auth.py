"""Auth routes: register, login, refresh (rotation), logout, password change, and the public JWKS.

Bodies are camelCase JSON; answers with tokens are the ``TokenPair`` shape:
``{"accessToken", "tokenType": "Bearer", "expiresIn", "refreshToken", "refreshExpiresIn", "user"}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field

from chatflow.domain.passwords import PASSWORD_MAX_CHARS
from chatflow.http.context import current_identity, source_ip
from chatflow.http.schemas import JwksOut, TokenPairOut, documented
from chatflow.http.services import HttpServices
from chatflow.wire import token_pair_to_dict


class _Body(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", str_strip_whitespace=False)


class RegisterRequest(_Body):
    handle: str = Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$", examples=["ada"])
    password: str = Field(min_length=8, max_length=PASSWORD_MAX_CHARS)
    displayName: str | None = Field(default=None, max_length=64)


class LoginRequest(_Body):
    handle: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_CHARS)


class RefreshRequest(_Body):
    refreshToken: str = Field(min_length=1, max_length=256)


class ChangePasswordRequest(_Body):
    currentPassword: str = Field(min_length=1, max_length=PASSWORD_MAX_CHARS)
    newPassword: str = Field(min_length=8, max_length=PASSWORD_MAX_CHARS)


def routes(services: HttpServices) -> Router:
    router = Router()  # type: ignore[no-untyped-call]

    @router.post(
        "/auth/register",
        status_code=201,
        summary="Create an account; returns a token pair",
        tags=["auth"],
        responses=documented(
            201,
            "Account created; signed in",
            (409, "handle_taken"),
            (422, "invalid", "invalid_handle", "weak_password", "invalid_display_name"),
        ),
    )
    def register(body: RegisterRequest) -> TokenPairOut:
        pair = services.users.register(body.handle, body.password, body.displayName)
        return TokenPairOut.model_validate(token_pair_to_dict(pair))

    @router.post(
        "/auth/login",
        summary="Exchange handle + password for a token pair",
        tags=["auth"],
        responses=documented(
            200,
            "Signed in",
            (401, "invalid_credentials"),
            (403, "account_disabled"),
            (429, "too_many_attempts"),
        ),
    )
    def login(body: LoginRequest) -> TokenPairOut:
        return TokenPairOut.model_validate(
            token_pair_to_dict(services.users.login(body.handle, body.password, source_ip(router)))
        )

    @router.post(
        "/auth/refresh",
        summary="Rotate a refresh token; returns a new pair",
        tags=["auth"],
        responses=documented(200, "New token pair", (401, "invalid_refresh_token")),
    )
    def refresh(body: RefreshRequest) -> TokenPairOut:
        return TokenPairOut.model_validate(token_pair_to_dict(services.users.refresh(body.refreshToken)))

    @router.post(
        "/auth/logout",
        status_code=204,
        summary="Revoke the refresh token's family",
        tags=["auth"],
        responses=documented(204, "Signed out", (401, "invalid_refresh_token")),
    )
    def logout(
        body: RefreshRequest,
        all: Annotated[
            bool, Query(description="also void every access and refresh token of the user")
        ] = False,
    ) -> Response[str]:
        services.users.logout(body.refreshToken, everywhere=all)
        return Response(status_code=204, content_type=content_types.APPLICATION_JSON, body="")

    @router.post(
        "/auth/password",
        summary="Change the caller's password; every other session ends, returns a new pair",
        description=(
            "Bearer auth. On success the new password is stored, every access token issued so far "
            "is void, every refresh token revoked and every live WebSocket of the user closed; the "
            "answer is a fresh token pair for this device. A wrong currentPassword counts as a "
            "failed sign-in for the throttle of POST /auth/login (same handle and address)."
        ),
        tags=["auth"],
        responses=documented(
            200,
            "Password changed; every other session ended; signed in here with a new pair",
            (401, "invalid_credentials"),
            (422, "invalid", "weak_password"),
            (429, "too_many_attempts"),
        ),
    )
    def change_password(body: ChangePasswordRequest) -> TokenPairOut:
        pair = services.users.change_password(
            current_identity(router), body.currentPassword, body.newPassword, source_ip(router)
        )
        return TokenPairOut.model_validate(token_pair_to_dict(pair))

    @router.get(
        "/.well-known/jwks.json",
        summary="Public keys that verify access tokens",
        tags=["auth"],
        responses={200: {"description": "JWK set", "content": {"application/json": {"model": JwksOut}}}},
    )
    def jwks() -> Response[dict[str, Any]]:
        return Response(
            status_code=200,
            content_type=content_types.APPLICATION_JSON,
            body={"keys": services.jwks()},
            headers={"Cache-Control": "public, max-age=300"},
        )

    return router
