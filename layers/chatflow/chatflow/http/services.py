"""What the HTTP API needs from the function's container (chatflow.container provides it).

The app and its routers receive it at :func:`chatflow.http.app.create_app` and read a service
when a request needs it, so a route's adapters are built on its first request only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chatflow.domain.analytics import AnalyticsService
    from chatflow.domain.messages import MessageService
    from chatflow.domain.notifications import NotificationService
    from chatflow.domain.realtime import RealtimeService
    from chatflow.domain.rooms import RoomService
    from chatflow.domain.users import UserService
    from chatflow.settings import Settings


class HttpServices(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def users(self) -> UserService: ...
    @property
    def rooms(self) -> RoomService: ...
    @property
    def messages(self) -> MessageService: ...
    @property
    def notifications(self) -> NotificationService: ...
    @property
    def analytics(self) -> AnalyticsService: ...
    @property
    def realtime(self) -> RealtimeService: ...

    def jwks(self) -> list[dict[str, str]]:
        """The public keys that verify access tokens, as JWKs."""
        ...

    def readiness_checks(self) -> Mapping[str, Callable[[], None]]:
        """Name -> a check that raises when that backing service is unreachable."""
        ...
