"""GET /notifications, POST /notifications/read (the caller's in-app notifications).

``GET /notifications?unreadOnly=true&limit=20&before=<id>``: unread counters per room (rooms
with something unread) and the caller's notifications, newest first, keyset-paged by id
(``nextBefore``).

``POST /notifications/read`` with ``{"roomIds": [...]}`` (clear those rooms' counters and their
notifications), ``{"ids": [...]}`` (those notifications) or ``{"all": true}``.
"""

from __future__ import annotations

import json
from typing import Any, cast
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chatflow.domain import notifications
from chatflow.domain.identity import Identity
from chatflow.domain.users import ensure_active
from chatflow.errors import InvalidInput
from chatflow.http.context import current_identity

router = Router()  # type: ignore[no-untyped-call]
_repo: notifications.NotificationRepository | None = None


def repository() -> notifications.NotificationRepository:
    global _repo
    if _repo is None:
        from chatflow.adapters.postgres.notifications import PostgresNotificationRepository

        _repo = PostgresNotificationRepository()
    return _repo


def _caller() -> Identity:
    # current_identity only reads current_event, which a Router has like the resolver.
    return ensure_active(current_identity(cast(APIGatewayHttpResolver, router)))


def _query_int(name: str, default: int | None) -> int | None:
    raw = router.current_event.get_query_string_value(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer") from None


def _query_bool(name: str) -> bool:
    raw = (router.current_event.get_query_string_value(name) or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise InvalidInput(f"{name} must be true or false")
    return raw in ("true", "1")


class MarkReadBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    room_ids: list[UUID] = Field(default_factory=list, alias="roomIds")
    ids: list[int] = Field(default_factory=list)
    all: bool = False


def _json_body() -> Any:
    raw = router.current_event.decoded_body
    if not raw:
        raise InvalidInput("a JSON body is required")
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidInput("body is not valid JSON") from None


@router.get("/notifications")
def list_notifications() -> dict[str, object]:
    identity = _caller()
    limit = _query_int("limit", 20)
    page = notifications.list_for_user(
        repository(),
        identity.user_id,
        unread_only=_query_bool("unreadOnly"),
        before=_query_int("before", None),
        limit=limit if limit is not None else 20,
    )
    return page.to_dict()


@router.post("/notifications/read")
def mark_notifications_read() -> dict[str, object]:
    identity = _caller()
    try:
        body = MarkReadBody.model_validate(_json_body())
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(f"{where}: {first['msg']}") from None
    result = notifications.mark_read(
        repository(), identity.user_id, room_ids=body.room_ids, ids=body.ids, everything=body.all
    )
    return dict(result)
