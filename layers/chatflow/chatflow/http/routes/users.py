"""GET /users/me."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.auth.service import get_user_service
from chatflow.http.context import current_identity

router = Router()  # type: ignore[no-untyped-call]


@router.get("/users/me", summary="The caller's profile", tags=["users"])
def me() -> dict[str, Any]:
    return get_user_service().me(current_identity(router)).to_dict()
