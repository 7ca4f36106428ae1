"""GET /admin/analytics (admins only): daily active users, daily counters and messages per room
per hour for a range of UTC days.

``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (inclusive, default the last 7 days, at most 92 days) and
optionally ``roomId`` to restrict the hourly series to one room.
"""

from __future__ import annotations

from datetime import date
from typing import cast
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.domain import analytics
from chatflow.domain.users import ensure_active
from chatflow.errors import Forbidden, InvalidInput
from chatflow.http.context import current_identity

router = Router()  # type: ignore[no-untyped-call]
_repo: analytics.AnalyticsRepository | None = None


def repository() -> analytics.AnalyticsRepository:
    global _repo
    if _repo is None:
        from chatflow.adapters.postgres.analytics import PostgresAnalyticsRepository

        _repo = PostgresAnalyticsRepository()
    return _repo


def _query_date(name: str) -> date | None:
    raw = router.current_event.get_query_string_value(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a date (YYYY-MM-DD)") from None


@router.get("/admin/analytics")
def get_analytics() -> dict[str, object]:
    identity = ensure_active(current_identity(cast(APIGatewayHttpResolver, router)))
    if not identity.is_admin:
        raise Forbidden("admins only")
    raw_room = router.current_event.get_query_string_value("roomId")
    room_id: UUID | None = None
    if raw_room:
        try:
            room_id = UUID(raw_room)
        except ValueError:
            raise InvalidInput("roomId must be a UUID") from None
    result = analytics.report(repository(), start=_query_date("from"), end=_query_date("to"), room_id=room_id)
    return result.to_dict()
