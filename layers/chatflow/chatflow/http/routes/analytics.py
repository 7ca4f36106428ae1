"""GET /admin/analytics (admins only): daily active users, daily counters and messages per room
per hour, for a range of UTC days (filled by the analytics function from the event stream).

``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (inclusive; default the last 7 days; at most 92 days) and
optionally ``roomId`` to restrict the hourly series to one room.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from chatflow.errors import Forbidden
from chatflow.http.context import current_identity
from chatflow.http.schemas import AnalyticsOut, documented
from chatflow.http.services import HttpServices
from chatflow.wire import analytics_report_to_dict


def routes(services: HttpServices) -> Router:
    router = Router()  # type: ignore[no-untyped-call]

    @router.get(
        "/admin/analytics",
        summary="Usage figures (admins only)",
        tags=["admin"],
        responses=documented(200, "Usage figures", (403, "forbidden"), 422, model=AnalyticsOut),
    )
    def get_analytics(
        from_: Annotated[date | None, Query(alias="from", description="first UTC day (YYYY-MM-DD)")] = None,
        to: Annotated[date | None, Query(description="last UTC day, inclusive (YYYY-MM-DD)")] = None,
        roomId: Annotated[UUID | None, Query(description="only this room's hourly series")] = None,
    ) -> dict[str, Any]:
        if not current_identity(router).is_admin:
            raise Forbidden("admins only")
        return analytics_report_to_dict(services.analytics.report(start=from_, end=to, room_id=roomId))

    return router
