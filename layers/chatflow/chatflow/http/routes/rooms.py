"""Rooms, members and DMs: GET/POST /rooms, GET /rooms/{id}, join, leave, members, POST /dms.

Thin: validate (pydantic / Powertools validation -> 422), call the rooms service, shape the
camelCase response (chatflow.wire). Path ids that are not UUIDs are refused with 422 like any invalid input.
Non-members: a public room answers 403 where membership is required; private rooms and DMs
answer 404 (their existence is not revealed). See docs/data-model.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from chatflow.domain.rooms import MAX_LIST_LIMIT, MAX_TOPIC_CHARS
from chatflow.http.context import current_identity
from chatflow.http.schemas import MemberOut, RoomOut, RoomPageOut, documented
from chatflow.http.services import HttpServices
from chatflow.wire import room_page_to_dict, room_to_dict


class _Body(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")


class CreateRoomRequest(_Body):
    kind: Literal["public", "private"] = Field(examples=["public"])
    name: str = Field(min_length=1, max_length=80, examples=["general"])
    topic: str = Field(default="", max_length=MAX_TOPIC_CHARS)


class UserTarget(_Body):
    """Exactly one of ``userId`` or ``handle``."""

    userId: UUID | None = None
    handle: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _exactly_one(self) -> UserTarget:
        if (self.userId is None) == (self.handle is None):
            raise ValueError("give exactly one of userId or handle")
        return self


def _json(status: int, body: Any) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def routes(services: HttpServices) -> Router:
    router = Router()  # type: ignore[no-untyped-call]

    @router.get(
        "/rooms",
        summary="The caller's rooms (with unread counts) or discoverable public rooms",
        tags=["rooms"],
        responses=documented(
            200, "A page of rooms", (422, "invalid", "invalid_cursor", "invalid_limit"), model=RoomPageOut
        ),
    )
    def list_rooms(
        scope: Annotated[
            Literal["mine", "public"],
            Query(description="mine: rooms you are in; public: discoverable channels"),
        ] = "mine",
        cursor: Annotated[
            str | None, Query(max_length=512, description="nextCursor of the previous page")
        ] = None,
        limit: Annotated[int | None, Query(ge=1, le=MAX_LIST_LIMIT)] = None,
    ) -> dict[str, Any]:
        identity = current_identity(router)
        if scope == "public":
            page = services.rooms.list_public_rooms(identity, cursor, limit)
        else:
            page = services.rooms.list_my_rooms(identity, cursor, limit)
        return room_page_to_dict(page)

    @router.post(
        "/rooms",
        status_code=201,
        summary="Create a channel (the caller becomes its owner)",
        tags=["rooms"],
        responses=documented(
            201,
            "The new room",
            (409, "name_taken"),
            (422, "invalid", "invalid_name", "invalid_topic"),
            model=RoomOut,
        ),
    )
    def create_room(body: CreateRoomRequest) -> dict[str, Any]:
        view = services.rooms.create_channel(current_identity(router), body.kind, body.name, body.topic)
        return room_to_dict(view)

    @router.get(
        "/rooms/<room_id>",
        summary="One room as the caller sees it",
        tags=["rooms"],
        responses=documented(200, "The room", (403, "not_a_member"), (404, "room_not_found"), model=RoomOut),
    )
    def get_room(room_id: UUID) -> dict[str, Any]:
        return room_to_dict(services.rooms.get_room(current_identity(router), room_id))

    @router.post(
        "/rooms/<room_id>/join",
        summary="Join a public channel",
        tags=["rooms"],
        responses=documented(
            200,
            "The room, joined",
            (403, "dm_membership_fixed"),
            (404, "room_not_found"),
            (409, "already_member"),
            model=RoomOut,
        ),
    )
    def join_room(room_id: UUID) -> dict[str, Any]:
        return room_to_dict(services.rooms.join(current_identity(router), room_id))

    @router.post(
        "/rooms/<room_id>/leave",
        status_code=204,
        summary="Leave a channel (an owner hands ownership to the oldest member)",
        tags=["rooms"],
        responses=documented(
            204, "Left", (403, "dm_membership_fixed"), (404, "room_not_found"), (409, "not_a_member")
        ),
    )
    def leave_room(room_id: UUID) -> Response[str]:
        services.rooms.leave(current_identity(router), room_id)
        return _json(204, "")

    @router.post(
        "/rooms/<room_id>/members",
        status_code=201,
        summary="Add a member (owner only)",
        tags=["rooms"],
        responses=documented(
            201,
            "Added",
            (403, "not_owner", "not_a_member", "dm_membership_fixed", "user_banned"),
            (404, "room_not_found", "user_not_found"),
            (409, "already_member"),
            (422, "invalid", "invalid_target"),
            model=MemberOut,
        ),
    )
    def add_member(room_id: UUID, body: UserTarget) -> dict[str, Any]:
        user = services.rooms.add_member(
            current_identity(router), room_id, user_id=body.userId, handle=body.handle
        )
        return {"roomId": str(room_id), "userId": str(user.id), "handle": user.handle, "role": "member"}

    @router.delete(
        "/rooms/<room_id>/members/<user_id>",
        status_code=204,
        summary="Remove a member (owner only); their access ends at once",
        tags=["rooms"],
        responses=documented(
            204,
            "Removed",
            (403, "not_owner", "not_a_member", "dm_membership_fixed"),
            (404, "room_not_found", "not_a_member"),
            (422, "invalid", "cannot_remove_self"),
        ),
    )
    def remove_member(room_id: UUID, user_id: UUID) -> Response[str]:
        services.rooms.remove_member(current_identity(router), room_id, user_id)
        return _json(204, "")

    @router.post(
        "/dms",
        summary="Create or get the direct-message room with another user (201 created, 200 existing)",
        tags=["rooms"],
        responses={
            **documented(200, "The existing DM", model=RoomOut),
            **documented(
                201,
                "The DM, created",
                (403, "user_banned"),
                (404, "user_not_found"),
                (422, "invalid", "invalid_target", "dm_self"),
                model=RoomOut,
            ),
        },
    )
    def open_dm(body: UserTarget) -> Response[dict[str, Any]]:
        view, created = services.rooms.open_dm(
            current_identity(router), user_id=body.userId, handle=body.handle
        )
        return _json(201 if created else 200, room_to_dict(view))

    return router
