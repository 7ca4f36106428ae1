"""GET /users/me."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.auth.service import get_user_service
from chatflow.http.context import current_identity
from chatflow.http.schemas import UserOut, documented

router = Router()  # type: ignore[no-untyped-call]


@router.get(
    "/users/me",
    summary="The caller's profile",
    tags=["users"],
    responses=documented(200, "The caller", 401, 503),
)
def me() -> UserOut:
    return UserOut.model_validate(get_user_service().me(current_identity(router)).to_dict())
