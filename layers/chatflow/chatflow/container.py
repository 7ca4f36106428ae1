"""The composition root: the ONE place that wires adapters into the domain services.

Every function builds one :class:`Container` from the settings at init
(``container = Container(get_settings())`` in its handler); the handler, the HTTP app, the
WebSocket actions, the local stack, the tests and the benchmarks all get their services from it.
Nothing else builds an adapter or a service, and nothing looks one up at run time.

Each attribute is a provider: built on first access, once per container, thread-safe. Importing
this module imports no adapter; a function pays only for what it touches, which keeps the cold-start
properties explicit here:

* ``users``' repository is Postgres ON FIRST USE (:func:`on_first_use`): ``ensure_active``'s warm
  path (the Redis status cache) never loads psycopg.
* the token signer (pyjwt + cryptography, and the private key from Secrets Manager) is built on the
  first token issued; functions that only verify or only check bans never pay for it.
* the fan-out / presence / $disconnect path reads ROOMS' cached member sets
  (:class:`~chatflow.adapters.redis_cache.CachedRoomDirectory`) and reaches ROOMS' service (its
  pydantic event schemas, psycopg) only on a cache miss.
* the EventBridge publisher loads the event schemas (pydantic) and botocore on its first publish.
* :meth:`Container.prime` builds object graphs and client OBJECTS at init without any
  network I/O, so SnapStart snapshots them and nothing needs re-opening after a restore
  (chatflow.snapstart closes the pools and the Redis client before the snapshot).

Tests replace a provider with :meth:`Container.override` (e.g. a recording notification channel).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from chatflow.settings import Settings

if TYPE_CHECKING:
    from chatflow.adapters.apigw_connections import ApiGatewayNotifier
    from chatflow.adapters.eventbridge import EventsApi
    from chatflow.adapters.outbox_relay import AfterCommitFlusher, OutboxRelay
    from chatflow.adapters.postgres.pool import PostgresPools
    from chatflow.adapters.redis_client import RedisConnection
    from chatflow.adapters.redis_realtime import RedisRealtimeStore
    from chatflow.auth.tokens import TokenSigner, TokenVerifier
    from chatflow.domain.analytics import AnalyticsService
    from chatflow.domain.messages import MessageService
    from chatflow.domain.notifications import NotificationService
    from chatflow.domain.ports import (
        AnalyticsRepository,
        EventPublisher,
        FanoutQueue,
        FanoutTurns,
        LoginThrottle,
        MessageRepository,
        NotificationChannel,
        NotificationRepository,
        RoomCache,
        RoomDirectory,
        RoomRepository,
        SessionTerminator,
        UserRepository,
        UserStatusCache,
    )
    from chatflow.domain.realtime import RealtimeService
    from chatflow.domain.rooms import RoomService
    from chatflow.domain.users import UserService

logger = logging.getLogger(__name__)

T = TypeVar("T")


class provider(Generic[T]):
    """A container attribute built by the decorated method on first access, once per container."""

    def __init__(self, build: Callable[[Any], T]) -> None:
        self._build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, container: None, owner: type) -> provider[T]: ...
    @overload
    def __get__(self, container: Container, owner: type) -> T: ...
    def __get__(self, container: Container | None, owner: type) -> provider[T] | T:
        if container is None:
            return self
        instances = container._instances
        if self.name not in instances:
            with container._lock:  # re-entrant: providers build the providers they need
                if self.name not in instances:
                    instances[self.name] = self._build(container)
        return cast(T, instances[self.name])


class _OnFirstUse:
    """Stands in for a port and builds the real adapter on the first attribute access."""

    def __init__(self, build: Callable[[], object]) -> None:
        self._build = build
        self._target: object | None = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        target = self._target
        if target is None:
            with self._lock:
                if self._target is None:
                    self._target = self._build()
                target = self._target
        return getattr(target, name)


def on_first_use(build: Callable[[], T]) -> T:
    """A stand-in for the adapter ``build`` makes, deferring its imports to the first call."""
    return cast(T, _OnFirstUse(build))


class Container:
    """The services and adapters of one function instance (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._instances: dict[str, object] = {}
        self._lock = threading.RLock()

    def override(self, **instances: object) -> None:
        """Use these objects for the named providers from now on (tests; e.g. ``channel=...``)."""
        for name, value in instances.items():
            if not isinstance(getattr(type(self), name, None), provider):
                raise AttributeError(f"Container has no provider {name!r}")
            with self._lock:
                self._instances[name] = value

    # --- connections ------------------------------------------------------------------------

    @provider
    def postgres(self) -> PostgresPools:
        """Writer and reader pools (opened on first use), with cloud credentials when configured."""
        from chatflow.adapters.postgres.pool import PostgresPools
        from chatflow.secrets import dsn_resolver_for

        return PostgresPools(self.settings, dsn_resolver_for(self.settings))

    @provider
    def redis(self) -> RedisConnection:
        from chatflow.adapters.redis_client import RedisConnection
        from chatflow.secrets import redis_password_resolver_for

        return RedisConnection(self.settings, password_resolver=redis_password_resolver_for(self.settings))

    # --- tokens -------------------------------------------------------------------------------

    @provider
    def token_verifier(self) -> TokenVerifier:
        """Public keys parsed once (the authorizer's and $connect's only dependency)."""
        from chatflow.auth.tokens import verifier_from_settings

        return verifier_from_settings(self.settings)

    @provider
    def token_signer(self) -> TokenSigner:
        """Built on the first token issued: the private key may come from Secrets Manager."""
        from chatflow.auth.tokens import signer_from_settings
        from chatflow.secrets import jwt_private_key

        return signer_from_settings(self.settings, jwt_private_key(self.settings))

    def jwks(self) -> list[dict[str, str]]:
        """The public keys as a JWK set's ``keys`` (GET /.well-known/jwks.json)."""
        from chatflow.auth.tokens import public_jwk

        return [public_jwk(key) for key in self.token_verifier.public_keys.values()]

    # --- events: outbox flush, sweep, publisher ----------------------------------------------------

    @provider
    def outbox(self) -> AfterCommitFlusher:
        """The OutboxFlusher writers call after COMMIT (off locally without an EventBridge endpoint)."""
        from chatflow.adapters.outbox_relay import AfterCommitFlusher

        return AfterCommitFlusher(lambda: self.flush_relay, enabled=self.settings.event_bus_configured)

    @provider
    def flush_relay(self) -> OutboxRelay:
        """Few, short retries: it runs inside a user's request. The sweep retries harder."""
        from chatflow.adapters.eventbridge import EventBridgePublisher
        from chatflow.adapters.outbox_relay import OutboxRelay

        publisher = EventBridgePublisher.from_settings(
            self.settings, max_attempts=2, client_factory=lambda: self.events_api
        )
        return OutboxRelay(pool=self.postgres.writer, publisher=publisher, claim_size=50)

    @provider
    def sweep_relay(self) -> OutboxRelay:
        """The scheduled sweep (functions/outbox_relay) can afford patience."""
        from chatflow.adapters.eventbridge import EventBridgePublisher
        from chatflow.adapters.outbox_relay import OutboxRelay

        publisher = EventBridgePublisher.from_settings(
            self.settings, max_attempts=4, base_delay_s=0.2, client_factory=lambda: self.events_api
        )
        return OutboxRelay(pool=self.postgres.writer, publisher=publisher)

    @provider
    def publisher(self) -> EventPublisher:
        """Events with no Postgres change to be atomic with (presence, connection.opened)."""
        from chatflow.adapters.eventbridge import EventBridgePublisher, NoBusPublisher

        if not self.settings.event_bus_configured:
            return NoBusPublisher()
        return EventBridgePublisher.from_settings(self.settings, client_factory=lambda: self.events_api)

    @provider
    def events_api(self) -> EventsApi:
        """The one EventBridge client (lean, one keep-alive connection) of every publisher here."""
        from chatflow.adapters.eventbridge import make_events_client
        from chatflow.observability import get_tracer

        return make_events_client(self.settings, tracer=get_tracer())

    # --- rooms and messages ---------------------------------------------------------------------

    @provider
    def room_repository(self) -> RoomRepository:
        from chatflow.adapters.postgres.rooms_repo import PostgresRoomRepository

        return PostgresRoomRepository(self.postgres, self.settings, after_commit=self.outbox.flush)

    @provider
    def message_repository(self) -> MessageRepository:
        from chatflow.adapters.postgres.messages_repo import PostgresMessageRepository

        return PostgresMessageRepository(self.postgres, self.settings, after_commit=self.outbox.flush)

    @provider
    def room_cache(self) -> RoomCache:
        from chatflow.adapters.redis_cache import RedisRoomCache

        return RedisRoomCache(self.redis, self.settings)

    @provider
    def rooms(self) -> RoomService:
        from chatflow.domain.rooms import RoomService

        return RoomService(self.room_repository, self.room_cache, self.outbox)

    @provider
    def messages(self) -> MessageService:
        from chatflow.domain.messages import MessageService

        return MessageService(self.message_repository, self.rooms, self.settings, outbox=self.outbox)

    # --- identity -----------------------------------------------------------------------------------

    @provider
    def user_repository(self) -> UserRepository:
        """Postgres on first use: a status-cache hit in ensure_active never imports psycopg."""

        def build() -> UserRepository:
            from chatflow.adapters.postgres.users_repo import PostgresUserRepository

            return PostgresUserRepository(self.postgres, self.settings)

        return on_first_use(build)

    @provider
    def user_status_cache(self) -> UserStatusCache:
        from chatflow.adapters.redis_user_status import RedisUserStatusCache

        return RedisUserStatusCache(self.redis)

    @provider
    def login_throttle(self) -> LoginThrottle:
        from chatflow.adapters.redis_user_status import RedisLoginThrottle
        from chatflow.domain.user_models import LoginBackoff

        s = self.settings
        return RedisLoginThrottle(
            self.redis,
            pair=LoginBackoff(s.login_free_failures, s.login_backoff_base_s, s.login_backoff_max_s),
            per_ip=LoginBackoff(s.login_ip_free_failures, s.login_backoff_base_s, s.login_backoff_max_s),
            window_s=s.login_failure_window_s,
        )

    @provider
    def session_terminator(self) -> SessionTerminator:
        """Bans, deletions and log-outs close the user's live WebSockets (REALTIME); the realtime
        service is built on the first such call only."""
        return on_first_use(lambda: self.realtime)

    @provider
    def users(self) -> UserService:
        from chatflow.domain.passwords import ScryptParams
        from chatflow.domain.users import UserService

        s = self.settings
        return UserService(
            self.user_repository,
            self.user_status_cache,
            lambda: self.token_signer,
            refresh_ttl_s=s.refresh_token_ttl_s,
            oidc_issuer=s.oidc_issuer,
            session_terminator=self.session_terminator,
            # Resolved at call time: the outbox flusher (and psycopg) is built on the first ban only.
            after_commit=lambda: self.outbox.flush(),  # noqa: PLW0108
            login_throttle=self.login_throttle,
            password_params=ScryptParams.from_log2(
                s.password_scrypt_log2_n, s.password_scrypt_r, s.password_scrypt_p
            ),
        )

    # --- realtime ---------------------------------------------------------------------------------

    @provider
    def connection_registry(self) -> RedisRealtimeStore:
        """Connections, presence, subscriptions, rate limits (also the notifications' presence)."""
        from chatflow.adapters.redis_realtime import RedisRealtimeStore

        return RedisRealtimeStore(self.redis, self.settings)

    @provider
    def notifier(self) -> ApiGatewayNotifier:
        from chatflow.adapters.apigw_connections import ApiGatewayNotifier

        return ApiGatewayNotifier(self.settings)

    @provider
    def fanout_queue(self) -> FanoutQueue | None:
        """SQS for rooms above ``fanout_async_threshold``; None when no queue is configured."""
        if not self.settings.fanout_queue_url:
            return None
        from chatflow.adapters.sqs_fanout import SqsFanoutQueue

        return SqsFanoutQueue(self.settings)

    @provider
    def fanout_turns(self) -> FanoutTurns:
        """Keeps a sender's fan-outs in seq order now that the ack goes first (Redis tickets)."""
        from chatflow.adapters.redis_fanout_turns import RedisFanoutTurns

        return RedisFanoutTurns(self.redis)

    @provider
    def room_directory(self) -> RoomDirectory:
        """ROOMS' cached member sets; ROOMS' service only on a miss."""
        from chatflow.adapters.redis_cache import CachedRoomDirectory

        # Resolved at call time: ROOMS' service is built on the first cache miss only.
        return CachedRoomDirectory(
            self.redis,
            load_members=lambda room_id: self.rooms.member_ids(room_id),  # noqa: PLW0108
            load_rooms=lambda user_id: self.rooms.room_ids_for_user(user_id),  # noqa: PLW0108
        )

    @provider
    def realtime(self) -> RealtimeService:
        from chatflow.domain.realtime import RealtimeService

        s = self.settings
        return RealtimeService(
            registry=self.connection_registry,
            notifier=self.notifier,
            rooms=self.room_directory,
            publisher=self.publisher,
            queue=self.fanout_queue,
            turns=self.fanout_turns,
            max_connections_per_user=s.max_connections_per_user,
            fanout_async_threshold=s.fanout_async_threshold,
            rate_messages_per_10s=s.rate_messages_per_10s,
            rate_typing_per_10s=s.rate_typing_per_10s,
            rate_requests_per_10s=s.rate_requests_per_10s,
            presence_page_max=s.presence_page_max,
            presence_async_threshold=s.presence_async_threshold,
            connects_per_minute=s.rate_connects_per_minute,
            # Resolved at call time: IDENTITY's service (and psycopg) only for a status-cache miss.
            handle_of=lambda user_id: self.users.handle_of(user_id),  # noqa: PLW0108
            gone_grace_s=s.gone_grace_s,
        )

    # --- event consumers ------------------------------------------------------------------------

    @provider
    def notification_repository(self) -> NotificationRepository:
        from chatflow.adapters.postgres.notifications import PostgresNotificationRepository

        return PostgresNotificationRepository(self.postgres)

    @provider
    def notification_channel(self) -> NotificationChannel:
        from chatflow.adapters.sns_delivery import SnsNotificationChannel
        from chatflow.observability import get_tracer

        return SnsNotificationChannel.from_settings(self.settings, tracer=get_tracer())

    @provider
    def notifications(self) -> NotificationService:
        from chatflow.domain.notifications import NotificationService

        return NotificationService(
            self.notification_repository, self.connection_registry, self.notification_channel
        )

    @provider
    def analytics_repository(self) -> AnalyticsRepository:
        from chatflow.adapters.postgres.analytics import PostgresAnalyticsRepository

        return PostgresAnalyticsRepository(self.postgres)

    @provider
    def analytics(self) -> AnalyticsService:
        from chatflow.domain.analytics import AnalyticsService

        return AnalyticsService(self.analytics_repository)

    # --- health -----------------------------------------------------------------------------------

    def readiness_checks(self) -> Mapping[str, Callable[[], None]]:
        """One round trip to each backing service (GET /health/ready)."""

        def postgres() -> None:
            with self.postgres.writer().connection() as conn:
                conn.execute("SELECT 1").fetchone()

        def redis() -> None:
            self.redis.client.ping()

        return {"postgres": postgres, "redis": redis}

    # --- lifecycle -------------------------------------------------------------------------------

    def prime(self, *, chat: bool = True, realtime: bool = True) -> None:
        """Init-phase warm-up: (``realtime``) the realtime service with its @connections client
        OBJECT (and its TLS context) and (``chat``) the rooms, messages and users services --
        imports and object graphs only, no network I/O (pools and sockets open on first use), so
        nothing needs re-opening after a SnapStart restore. Failures are left to the first
        invocation to report."""
        try:
            if realtime:
                _ = self.realtime
                _ = self.notifier.client
            if chat:
                _ = self.messages
                _ = self.users
        except Exception:
            logger.warning("prime failed; the first invocation will retry", exc_info=True)

    def close_connections(self) -> None:
        """Close the pools, the Redis client and the @connections keep-alive connections if they
        were opened (they reopen on next use): SnapStart's before-snapshot hook, and tests."""
        built = self._instances
        if "postgres" in built:
            self.postgres.close()
        if "redis" in built:
            self.redis.close()
        if "notifier" in built:
            self.notifier.close_idle()

    def close(self) -> None:
        """Everything this container opened: connections and the notifier's thread pool."""
        self.close_connections()
        if "notifier" in self._instances:
            self.notifier.close()
