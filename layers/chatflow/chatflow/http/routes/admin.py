"""Admin: ban / unban / delete a user (admins only; see docs/auth.md for how admins are made)."""

from __future__ import annotations

from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.http.context import current_identity
from chatflow.http.schemas import BanOut, DeleteUserOut, UserEnvelope, documented
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

    @router.delete(
        "/admin/users/<user_id>",
        summary="Delete a user (soft): tokens void, sessions closed",
        description=(
            "The admin CLI's `delete`, by id: status deleted (messages keep their sender), every "
            "token void, every refresh token revoked, every live WebSocket closed. Idempotent."
        ),
        tags=["admin"],
        responses=documented(
            200,
            "Deleted (idempotent)",
            (403, "forbidden"),
            (404, "not_found"),
            (422, "invalid", "cannot_delete_self"),
        ),
    )
    def delete_user(user_id: UUID) -> DeleteUserOut:
        user, closed = services.users.delete_user_by_id(current_identity(router), user_id)
        return DeleteUserOut.model_validate({"user": user_to_dict(user), "sessionsClosed": closed})

    return router
