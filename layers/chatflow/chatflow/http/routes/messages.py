"""History, edits, read marks: GET /rooms/{id}/messages, PATCH/DELETE .../messages/{seq}, POST .../read.

Sending goes through the WebSocket (``sendMessage``); the shapes come from
:func:`chatflow.wire.message_to_dict`, the same for both transports.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from chatflow.http.context import current_identity
from chatflow.http.schemas import HistoryOut, MessageOut, ReadPositionOut, documented
from chatflow.http.services import HttpServices
from chatflow.wire import history_to_dict, message_to_dict

Seq = Annotated[int, Path(ge=1, le=2**62, description="The message's sequence number in the room")]


class MarkReadRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    # strict: "1" or true is a client bug, not a position.
    seq: int = Field(ge=0, le=2**62, strict=True, description="The last seq the caller has read")


class EditMessageRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    # Length and content rules (settings.max_message_chars) are the domain's.
    body: str = Field(min_length=1)


def routes(services: HttpServices) -> Router:
    router = Router()  # type: ignore[no-untyped-call]

    @router.get(
        "/rooms/<room_id>/messages",
        summary="History, keyset-paginated by seq (ascending); prevCursor -> before=, nextCursor -> after=",
        tags=["messages"],
        responses=documented(
            200,
            "A page of messages",
            (403, "not_a_member"),
            (404, "room_not_found"),
            (422, "invalid", "invalid_range"),
            model=HistoryOut,
        ),
    )
    def history(
        room_id: UUID,
        before: Annotated[
            int | None, Query(ge=1, le=2**62, description="only messages with seq < before")
        ] = None,
        after: Annotated[
            int | None, Query(ge=0, le=2**62, description="only messages with seq > after")
        ] = None,
        limit: Annotated[int | None, Query(ge=1, description="page size, capped at history_page_max")] = None,
    ) -> dict[str, Any]:
        page = services.messages.history(
            current_identity(router), room_id, before=before, after=after, limit=limit
        )
        return history_to_dict(page)

    @router.patch(
        "/rooms/<room_id>/messages/<seq>",
        summary="Edit a message (author only)",
        tags=["messages"],
        responses=documented(
            200,
            "The edited message",
            (403, "not_author", "not_a_member"),
            (404, "room_not_found", "message_not_found"),
            (409, "message_deleted"),
            (422, "invalid", "invalid_body", "body_too_long"),
            model=MessageOut,
        ),
    )
    def edit_message(room_id: UUID, seq: Seq, body: EditMessageRequest) -> dict[str, Any]:
        return message_to_dict(services.messages.edit(current_identity(router), room_id, seq, body.body))

    @router.delete(
        "/rooms/<room_id>/messages/<seq>",
        summary="Soft-delete a message (author or admin); the body is hidden from then on",
        tags=["messages"],
        responses=documented(
            200,
            "The deleted message (body null)",
            (403, "not_author", "not_a_member"),
            (404, "room_not_found", "message_not_found"),
            model=MessageOut,
        ),
    )
    def delete_message(room_id: UUID, seq: Seq) -> dict[str, Any]:
        return message_to_dict(services.messages.delete(current_identity(router), room_id, seq))

    @router.post(
        "/rooms/<room_id>/read",
        summary="Move the caller's read position forward (never backwards, at most lastSeq)",
        tags=["messages"],
        responses=documented(
            200, "The read position", (403, "not_a_member"), (404, "room_not_found"), model=ReadPositionOut
        ),
    )
    def mark_read(room_id: UUID, body: MarkReadRequest) -> dict[str, Any]:
        position = services.messages.mark_read(current_identity(router), room_id, body.seq)
        return {"roomId": str(room_id), "lastReadSeq": position}

    return router
