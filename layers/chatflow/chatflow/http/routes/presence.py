"""GET /rooms/{id}/presence: the room's presence snapshot (members only).

The same snapshot the WebSocket ``joined`` reply and ``presence`` action carry
(chatflow.wire.presence_page_to_dict): online members, each with the presence version of their
``online`` transition, paged by ``cursor`` (docs/http-api.md, docs/protocol.md).
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, Field

from chatflow.http.context import current_identity
from chatflow.http.schemas import documented
from chatflow.http.services import HttpServices
from chatflow.wire import presence_page_to_dict


class PresenceEntryOut(BaseModel):
    userId: str
    handle: str | None = Field(description="null only if the user vanished meanwhile")
    status: Literal["online"]
    version: int = Field(description="Presence version of the user's online transition (merge rule)")


class PresenceSnapshotOut(BaseModel):
    roomId: str
    online: list[PresenceEntryOut]
    more: bool = Field(description="More online members: ask again with cursor")
    cursor: str | None = Field(default=None, description="Present when more is true")


def routes(services: HttpServices) -> Router:
    router = Router()  # type: ignore[no-untyped-call]

    @router.get(
        "/rooms/<room_id>/presence",
        summary="Who is online in the room now (members only; paged)",
        tags=["rooms"],
        responses=documented(200, "Online members with their presence versions", 401, 403, 404, 422, 503),
    )
    def room_presence(
        room_id: UUID,
        cursor: Annotated[UUID | None, Query(description="cursor of the previous page")] = None,
        limit: Annotated[int | None, Query(ge=1, le=1000, description="at most PRESENCE_PAGE_MAX")] = None,
    ) -> PresenceSnapshotOut:
        services.rooms.require_member(current_identity(router), room_id)
        page = services.realtime.room_presence(room_id, after=cursor, limit=limit)
        return PresenceSnapshotOut.model_validate(presence_page_to_dict(room_id, page))

    return router
