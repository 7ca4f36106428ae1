"""Admin: ban / unban a user (admins only; see docs/auth.md for how admins are made)."""

from __future__ import annotations

from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.auth.service import get_user_service
from chatflow.http.context import current_identity
from chatflow.http.schemas import BanOut, UserEnvelope, documented

router = Router()  # type: ignore[no-untyped-call]


@router.post(
    "/admin/users/<user_id>/ban",
    summary="Ban a user: tokens void, sessions closed",
    tags=["admin"],
    responses=documented(200, "Banned (idempotent)", 401, 403, 404, 422),
)
def ban(user_id: UUID) -> BanOut:
    user, closed = get_user_service().ban(current_identity(router), user_id)
    return BanOut.model_validate({"user": user.to_dict(), "sessionsClosed": closed})


@router.post(
    "/admin/users/<user_id>/unban",
    summary="Lift a ban (old tokens stay void)",
    tags=["admin"],
    responses=documented(200, "Unbanned", 401, 403, 404, 422),
)
def unban(user_id: UUID) -> UserEnvelope:
    user = get_user_service().unban(current_identity(router), user_id)
    return UserEnvelope.model_validate({"user": user.to_dict()})
