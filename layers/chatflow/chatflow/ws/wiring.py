"""Default wiring of the realtime service from the real adapters (one per Lambda container).

Redis registry, API Gateway notifier (``settings.ws_management_endpoint``), ROOMS' cached member
lists, the EventBridge publisher and -- when ``settings.fanout_queue_url`` is set -- the SQS
fan-out queue. Everything is created lazily: importing this module costs nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from chatflow.domain.realtime import RealtimeService
from chatflow.settings import Settings, get_settings

if TYPE_CHECKING:
    from chatflow.events.schemas import DomainEvent
    from chatflow.ports import EventPublisher

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_service: RealtimeService | None = None
#: ROOMS' cached sets carry this member so that "no members" is cacheable (redis_cache._SENTINEL).
_CACHE_SENTINEL = "-"


class RoomsDirectory:
    """RoomDirectory over ROOMS' cached member sets (Redis, invalidated on membership changes).

    Hits are read straight from ROOMS' cache keys (the same SMEMBERS ROOMS' own read does), so a
    warm path imports neither psycopg nor ROOMS' domain (pydantic event schemas): the fanout and
    $disconnect functions stay light at cold start. A miss reads through ROOMS' domain, which
    fills the cache under its invalidation guard.
    """

    def member_ids(self, room_id: UUID) -> Collection[UUID]:
        from chatflow.adapters.redis_cache import room_members_key

        cached = self._cached([room_members_key(room_id)])[0]
        if cached is not None:
            return cached
        from chatflow.domain import rooms

        return rooms.member_ids(room_id)

    def room_ids(self, user_id: UUID) -> Collection[UUID]:
        from chatflow.adapters.redis_cache import user_rooms_key

        cached = self._cached([user_rooms_key(user_id)])[0]
        if cached is not None:
            return cached
        from chatflow.domain import rooms

        return rooms.room_ids_for_user(user_id)

    def members_of(self, room_ids: Collection[UUID]) -> dict[UUID, Collection[UUID]]:
        """Member ids of several rooms: ONE pipeline over the cached sets, read-through only for
        the rooms not cached. Presence on connect/disconnect touches every room of the user;
        this keeps it one round trip when the cache is warm."""
        from chatflow.adapters.redis_cache import room_members_key

        ordered = list(room_ids)
        out: dict[UUID, Collection[UUID]] = {}
        cached = self._cached([room_members_key(r) for r in ordered])
        for room_id, members in zip(ordered, cached, strict=True):
            if members is not None:
                out[room_id] = members
        missing = [r for r in ordered if r not in out]
        if missing:
            from chatflow.domain import rooms

            for room_id in missing:
                out[room_id] = rooms.member_ids(room_id)
        return out

    @staticmethod
    def _cached(keys: list[str]) -> list[set[UUID] | None]:
        """The cached id sets at ``keys`` (one round trip); None where not cached or on error."""
        if not keys:
            return []
        from chatflow.adapters.redis_client import get_redis

        try:
            pipe = get_redis().pipeline(transaction=False)
            for k in keys:
                pipe.smembers(k)
            results = pipe.execute()
        except Exception:  # the cache is an optimisation; ROOMS' read-through handles outages
            logger.warning("room cache read failed; reading through", exc_info=True)
            return [None] * len(keys)
        # Cached sets always hold a sentinel, so an empty result means "not cached".
        return [
            {UUID(m) for m in members if m != _CACHE_SENTINEL} if members else None for members in results
        ]


class _LazyPublisher:
    """Imports the EventBridge adapter (and with it the pydantic event schemas) on first use:
    functions that rarely publish ($disconnect, fanout) do not pay for it at cold start."""

    def __init__(self) -> None:
        self._publisher: EventPublisher | None = None

    def publish(self, events: Sequence[DomainEvent]) -> None:
        if self._publisher is None:
            from chatflow.adapters.eventbridge import get_publisher

            self._publisher = get_publisher()
        self._publisher.publish(events)


class _NoBusPublisher:
    """Local runs without an EventBridge endpoint (as the outbox relay does): events are logged,
    not sent, instead of waiting on AWS timeouts. Never used in the cloud."""

    def publish(self, events: Sequence[DomainEvent]) -> None:
        logger.debug("no event bus configured; not publishing %s", [e.detail_type for e in events])


def default_publisher(settings: Settings) -> EventPublisher:
    if settings.env in ("local", "test") and not (settings.events_endpoint_url or settings.aws_endpoint_url):
        return _NoBusPublisher()
    return _LazyPublisher()


def build_service(
    settings: Settings | None = None,
    *,
    publisher: EventPublisher | None = None,
) -> RealtimeService:
    from chatflow.adapters.apigw_connections import get_notifier
    from chatflow.adapters.redis_realtime import get_realtime_store
    from chatflow.adapters.sqs_fanout import SqsFanoutQueue

    settings = settings or get_settings()
    return RealtimeService(
        registry=get_realtime_store(),
        notifier=get_notifier(),
        rooms=RoomsDirectory(),
        publisher=publisher or default_publisher(settings),
        queue=SqsFanoutQueue(settings) if settings.fanout_queue_url else None,
        max_connections_per_user=settings.max_connections_per_user,
        fanout_async_threshold=settings.fanout_async_threshold,
        rate_messages_per_10s=settings.rate_messages_per_10s,
        rate_typing_per_10s=settings.rate_typing_per_10s,
        rate_requests_per_10s=settings.rate_requests_per_10s,
    )


def prime(*, chat: bool = True) -> None:
    """Init-phase warm-up: build the realtime service, the botocore client OBJECT and (``chat``)
    ROOMS' and IDENTITY's services -- imports and object graphs only, no network I/O (pools and
    sockets open on first use), so nothing needs re-opening after a SnapStart restore.
    Failures are left to the first invocation to report."""
    try:
        service = realtime()
        getattr(service.notifier, "client", None)
        if chat:
            from chatflow.auth.service import get_user_service
            from chatflow.domain import rooms

            rooms.services()
            get_user_service()
    except Exception:
        logger.warning("realtime prime failed; the first invocation will retry", exc_info=True)


def realtime() -> RealtimeService:
    """The container's service, built on first use."""
    global _service
    if _service is None:
        with _lock:
            if _service is None:
                _service = build_service()
    return _service


def use_service(service: RealtimeService | None) -> None:
    """Install another service (tests), or None to rebuild from settings on next use."""
    global _service
    with _lock:
        _service = service


class RealtimeSessionTerminator:
    """SessionTerminator implementation: DeleteConnection for every live connection."""

    def terminate_user_sessions(self, user_id: UUID) -> int:
        return realtime().terminate_user_sessions(user_id)
