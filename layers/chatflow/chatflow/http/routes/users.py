"""GET /users/me."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.http.context import current_identity
from chatflow.http.schemas import UserOut, documented
from chatflow.http.services import HttpServices
from chatflow.wire import user_to_dict


def routes(services: HttpServices) -> Router:
    router = Router()  # type: ignore[no-untyped-call]

    @router.get(
        "/users/me",
        summary="The caller's profile",
        tags=["users"],
        responses=documented(200, "The caller"),
    )
    def me() -> UserOut:
        return UserOut.model_validate(user_to_dict(services.users.me(current_identity(router))))

    return router
