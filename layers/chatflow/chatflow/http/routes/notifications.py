"""GET /notifications, POST /notifications/read: the caller's in-app notifications.

``GET /notifications?unreadOnly=true&limit=20&before=<id>``: unread counters per room (rooms with
something unread) and the caller's notifications, newest first, keyset-paged by id
(``nextBefore``). Written by the notifications function for members who were offline.

``POST /notifications/read`` with ``{"roomIds": [...]}`` (clear those rooms' counters and their
notifications), ``{"ids": [...]}`` (those notifications) or ``{"all": true}``.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field

from chatflow.domain.notifications import MAX_PAGE
from chatflow.http.context import current_identity
from chatflow.http.schemas import NotificationsPageOut, NotificationsReadOut, documented
from chatflow.http.services import HttpServices
from chatflow.wire import notifications_page_to_dict


class MarkReadRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    roomIds: list[UUID] = Field(default_factory=list, max_length=MAX_PAGE)
    ids: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list, max_length=MAX_PAGE)
    all: bool = False


def routes(services: HttpServices) -> Router:
    router = Router()  # type: ignore[no-untyped-call]

    @router.get(
        "/notifications",
        summary="Unread counters per room and the caller's notifications",
        tags=["notifications"],
        responses=documented(200, "Counters and a page of notifications", 422, model=NotificationsPageOut),
    )
    def list_notifications(
        unreadOnly: Annotated[bool, Query(description="only notifications not read yet")] = False,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
        before: Annotated[int | None, Query(ge=1, description="nextBefore of the previous page")] = None,
    ) -> dict[str, Any]:
        identity = current_identity(router)
        page = services.notifications.list_for_user(
            identity.user_id, unread_only=unreadOnly, before=before, limit=limit
        )
        return notifications_page_to_dict(page)

    @router.post(
        "/notifications/read",
        summary="Mark notifications read / clear unread counters",
        tags=["notifications"],
        responses=documented(200, "What was marked", 422, model=NotificationsReadOut),
    )
    def mark_notifications_read(body: MarkReadRequest) -> dict[str, Any]:
        identity = current_identity(router)
        result = services.notifications.mark_read(
            identity.user_id, room_ids=body.roomIds, ids=body.ids, everything=body.all
        )
        return dict(result)

    return router
