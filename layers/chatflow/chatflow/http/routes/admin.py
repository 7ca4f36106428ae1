"""Admin: ban / unban a user (admins only; see docs/auth.md for how admins are made)."""

from __future__ import annotations

from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.http.context import current_identity
from chatflow.http.schemas import BanOut, UserEnvelope, documented
from chatflow.http.services import HttpServices
from chatflow.wire import user_to_dict


def routes(services: HttpServices) -> Router:
    router = Router()  # type: ignore[no-untyped-call]

    @router.post(
        "/admin/users/<user_id>/ban",
        summary="Ban a user: tokens void, sessions closed",
        tags=["admin"],
        responses=documented(
            200,
            "Banned (idempotent)",
            (403, "forbidden"),
            (404, "not_found"),
            (422, "invalid", "cannot_ban_self"),
        ),
    )
    def ban(user_id: UUID) -> BanOut:
        user, closed = services.users.ban(current_identity(router), user_id)
        return BanOut.model_validate({"user": user_to_dict(user), "sessionsClosed": closed})

    @router.post(
        "/admin/users/<user_id>/unban",
        summary="Lift a ban (old tokens stay void)",
        tags=["admin"],
        responses=documented(200, "Unbanned", (403, "forbidden"), (404, "not_found"), 422),
    )
    def unban(user_id: UUID) -> UserEnvelope:
        user = services.users.unban(current_identity(router), user_id)
        return UserEnvelope.model_validate({"user": user_to_dict(user)})

    return router
