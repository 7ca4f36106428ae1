"""Ports: the small interfaces the domain services talk to; chatflow.adapters implement them and
the function's container (chatflow.container) hands the implementations to the services.

This module imports domain MODEL modules only (``chatflow.domain.*_models``, identity, the event
schemas), never a domain service or an adapter, so nothing it names can import it back.
Each section is owned by one area; add Protocols to your area's section.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from chatflow.domain.analytics_models import Applied, DailyFigures, Delta, RoomHour
    from chatflow.domain.identity import Role
    from chatflow.domain.notification_models import (
        DeliveryStatus,
        Notification,
        Plan,
        RoomAudience,
        RoomUnread,
    )
    from chatflow.domain.realtime_models import (  # REALTIME
        DeliveryReport,
        DeliveryTargets,
        PresenceEntry,
        RateDecision,
        Registration,
        RemovedConnections,
        Target,
        Unregistration,
    )
    from chatflow.domain.room_models import (
        HistoryPage,
        Membership,
        Message,
        Page,
        Room,
        RoomView,
        UserRef,
    )
    from chatflow.domain.user_models import (  # IDENTITY
        IssuedToken,
        NewUser,
        RefreshOutcome,
        RefreshTokenRecord,
        RevokedFamily,
        User,
        UserStatus,
    )
    from chatflow.events.schemas import DomainEvent


# --- rooms (ROOMS) ---------------------------------------------------------------------------
# Every write method runs ONE Postgres transaction on the writer, enqueues the given events in
# it (transactional outbox) and returns after COMMIT. ``check`` callbacks are domain rules run
# inside that transaction, on rows locked FOR UPDATE; they raise chatflow.errors to abort.

#: Domain rule run in a write transaction on the locked room and the ACTOR's membership (the
#: caller; for join/leave the actor is the member).
RoomCheck = Callable[["Room", "Membership | None"], None]
#: Domain rule run on the locked message row before it is changed.
MessageCheck = Callable[["Message"], None]


class RoomRepository(Protocol):
    # writer (read-your-writes: authorization and cache fills)
    def find_room(self, room_id: UUID) -> Room | None: ...
    def member_ids(self, room_id: UUID) -> list[UUID]: ...
    def room_ids_for_user(self, user_id: UUID) -> list[UUID]: ...
    def find_user(self, *, user_id: UUID | None = None, handle: str | None = None) -> UserRef | None: ...

    # reader (tolerates replica lag)
    def room_view(self, room_id: UUID, user_id: UUID, *, consistent: bool = False) -> RoomView | None:
        """The room as ``user_id`` sees it; ``consistent`` reads the writer (after a write)."""
        ...

    def list_member_rooms(self, user_id: UUID, cursor: str | None, limit: int) -> Page[RoomView]: ...
    def list_public_rooms(self, user_id: UUID, cursor: str | None, limit: int) -> Page[RoomView]: ...

    # writes
    def create_channel(self, room: Room, events: Sequence[DomainEvent]) -> None:
        """Insert the room and its owner's membership; Conflict on a duplicate name."""
        ...

    def get_or_create_dm(self, room: Room, events: Sequence[DomainEvent]) -> tuple[Room, bool]:
        """The DM of ``room``'s pair: inserted (True) or the existing one (False, no events)."""
        ...

    def add_member(
        self, room_id: UUID, user_id: UUID, actor_id: UUID, check: RoomCheck, events: Sequence[DomainEvent]
    ) -> None:
        """Add a member (role member) after ``check``; Conflict when already a member."""
        ...

    def remove_member(
        self, room_id: UUID, user_id: UUID, actor_id: UUID, check: RoomCheck, events: Sequence[DomainEvent]
    ) -> UUID | None:
        """Remove a membership; when it was the owner's, hand ownership to the oldest remaining
        member and return that member's id (Conflict if no one remains)."""
        ...

    def mark_read(self, room_id: UUID, user_id: UUID, seq: int) -> int | None:
        """Monotonic: last_read_seq = max(current, min(seq, last_seq)); None if not a member."""
        ...


class MessageRepository(Protocol):
    def insert(
        self,
        *,
        room_id: UUID,
        message_id: UUID,
        sender_id: UUID,
        client_message_id: str,
        body: str,
        mention_candidates: Sequence[str],
        check: RoomCheck,
        event: Callable[[Message], DomainEvent],
    ) -> tuple[Message, bool]:
        """Lock the room row, seq = last_seq + 1, insert message + outbox row, bump last_seq.

        A duplicate (sender_id, client_message_id) returns the stored message and False.
        ``Message.mentions`` holds the candidates that are handles of room members.
        """
        ...

    def update(
        self,
        room_id: UUID,
        seq: int,
        check: MessageCheck,
        change: Callable[[Message], tuple[Message, DomainEvent] | None],
    ) -> Message | None:
        """Lock the message, run ``check``, store what ``change`` returns (edited_at, body,
        deleted_at) with its event; ``change`` returning None means no-op. None: no message."""
        ...

    def history(
        self, room_id: UUID, *, before: int | None, after: int | None, limit: int
    ) -> HistoryPage | None:
        """Keyset page by seq (reader); None when the room does not exist."""
        ...


class RoomCache(Protocol):
    """Read-through cache of room metadata, member sets and per-user room sets (Redis)."""

    def room(self, room_id: UUID, load: Callable[[], Room | None]) -> Room | None: ...
    def access(
        self,
        room_id: UUID,
        user_id: UUID,
        load_room: Callable[[], Room | None],
        load_members: Callable[[], Iterable[UUID]],
    ) -> tuple[Room | None, bool]:
        """(room, is ``user_id`` a member) -- one round trip when both are cached."""
        ...

    def member_ids(self, room_id: UUID, load: Callable[[], Iterable[UUID]]) -> frozenset[UUID]: ...
    def room_ids(self, user_id: UUID, load: Callable[[], Iterable[UUID]]) -> frozenset[UUID]: ...

    def invalidate(self, *, room_ids: Iterable[UUID] = (), user_ids: Iterable[UUID] = ()) -> None:
        """Drop the entries of these rooms and users now (called after COMMIT)."""
        ...


# --- events (EVENTS) -------------------------------------------------------------------------
# Transactional events go through the outbox (the Postgres repositories enqueue them in the
# writer's transaction, then call the OutboxFlusher after COMMIT). The publisher is for events
# with no Postgres change to be atomic with (presence, connection.opened).


class OutboxFlusher(Protocol):
    """Sends committed outbox rows to the bus right after COMMIT
    (chatflow.adapters.outbox_relay.AfterCommitFlusher)."""

    def flush(self) -> object:
        """Best effort, never raises: what it cannot send, the scheduled sweep sends later."""
        ...

    def deferred(self) -> AbstractContextManager[None]:
        """Hold the flushes asked for inside the block and run one at its end (also when it
        raised), so a writer's other after-commit work (cache invalidation) goes first."""
        ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[DomainEvent]) -> None:
        """Validate every event (InvalidEvent: nothing is sent), then put them on the bus.

        Raises chatflow.adapters.eventbridge.PublishFailed (an Unavailable) for events the bus
        did not accept after retries.
        """
        ...


# --- notifications and analytics (EVENTS' consumers) -----------------------------------------


class NotificationChannel(Protocol):
    """Hands a notification to an out-of-app delivery channel (SNS topic by default)."""

    @property
    def name(self) -> str: ...

    def deliver(self, notification: Notification) -> bool:
        """Deliver one notification; False when the channel is not configured (logged)."""
        ...


class NotificationRepository(Protocol):
    def audience(self, room_id: UUID) -> RoomAudience | None: ...
    def handle_of(self, user_id: UUID) -> str | None: ...
    def current_body(self, message_id: UUID) -> str | None:
        """The message's text now: "" once deleted, None when there is no such message."""
        ...

    def set_previews(self, message_id: UUID, preview: str) -> int:
        """Replace the preview of every notification about ``message_id``; returns how many."""
        ...

    def apply(self, consumer: str, event: DomainEvent, plan: Plan) -> list[int] | None:
        """In ONE transaction: record (consumer, event_id) as processed and apply ``plan``.

        Returns the ids of the notifications created, or None when the event was already
        processed (nothing is changed then)."""
        ...

    def deliver_pending(
        self, event_id: UUID, deliver: Callable[[Notification], DeliveryStatus]
    ) -> list[tuple[int, DeliveryStatus | Exception]]:
        """Lock this event's notifications not yet handed to the channel (SKIP LOCKED), call
        ``deliver`` for each and record the result; an exception leaves the row pending."""
        ...

    def list_for_user(
        self, user_id: UUID, *, unread_only: bool, before: int | None, limit: int
    ) -> tuple[list[RoomUnread], list[Notification]]: ...

    def mark_read(
        self, user_id: UUID, *, room_ids: Sequence[UUID], ids: Sequence[int], everything: bool
    ) -> tuple[int, int]:
        """Clear counters of ``room_ids`` (with their notifications), notifications ``ids``,
        or everything; returns (rooms cleared, notifications marked read)."""
        ...


class PresenceLookup(Protocol):
    """Who is online (REALTIME's registry): the notifications consumer skips those users."""

    def online_user_ids(self, user_ids: Iterable[UUID]) -> set[UUID]: ...


class AnalyticsRepository(Protocol):
    def apply(self, consumer: str, event: DomainEvent, delta: Delta) -> Applied: ...
    def daily(self, start: date, end: date) -> list[DailyFigures]: ...
    def rooms_hourly(
        self, start: datetime, end: datetime, room_id: UUID | None, limit: int
    ) -> list[RoomHour]: ...


# --- realtime (REALTIME) -----------------------------------------------------------------------
# Implemented by chatflow.adapters.redis_realtime (registry), .apigw_connections (notifier),
# .sqs_fanout (queue) and .redis_fanout_turns (turns); used by chatflow.domain.realtime.RealtimeService.


class ConnectionRegistry(Protocol):
    """Live WebSocket connections per user (expiring), room subscriptions, rate limits."""

    def register(
        self,
        user_id: UUID,
        connection_id: str,
        *,
        limit: int | None = None,
        session_issued_at: float | None = None,
    ) -> Registration: ...
    def unregister(self, user_id: UUID, connection_id: str, *, grace_s: float = 0.0) -> Unregistration: ...
    def touch(self, user_id: UUID, connection_id: str) -> bool: ...
    def remove_all(self, user_id: UUID) -> RemovedConnections: ...
    def epoch_lost(self) -> bool:
        """True once after the registry's store lost its data (then the epoch is re-created)."""
        ...

    def presence_is_current(self, user_id: UUID, version: int, *, online: bool) -> bool: ...
    def connections_of(self, user_ids: Iterable[UUID]) -> list[Target]: ...
    def delivery_targets(self, user_ids: Iterable[UUID]) -> DeliveryTargets:
        """Live connections split into valid and revoked sessions, in one round trip."""
        ...

    def online_user_ids(self, user_ids: Iterable[UUID]) -> set[UUID]: ...
    def online_presence(self, user_ids: Iterable[UUID]) -> list[PresenceEntry]:
        """Online users among ``user_ids`` with their current presence versions (snapshots)."""
        ...

    def subscribe(self, user_id: UUID, connection_id: str, room_id: UUID) -> bool: ...
    def unsubscribe(self, user_id: UUID, connection_id: str, room_id: UUID) -> None: ...
    def subscribers(self, room_id: UUID) -> list[Target]: ...
    def hit_rate_limit(
        self,
        kind: str,
        connection_id: str,
        *,
        limit: int,
        window_s: float,
        with_status_of: UUID | None = None,
    ) -> RateDecision:
        """``with_status_of``: that user's cached status, read in the same round trip, returned
        as ``RateDecision.status``."""
        ...


class ConnectionNotifier(Protocol):
    """Pushes frames to connections (API Gateway @connections)."""

    def send(self, targets: Sequence[Target], data: bytes) -> DeliveryReport:
        """Deliver to every target; 410s are reported in ``gone``, never raised."""
        ...

    def close_connections(self, connection_ids: Sequence[str]) -> int:
        """Close connections (DeleteConnection); returns how many were still open."""
        ...


class FanoutQueue(Protocol):
    """Hands a large room's fan-out to the asynchronous consumer (SQS -> fanout function)."""

    def enqueue(
        self,
        room_id: UUID,
        frame: dict[str, object],
        *,
        member_ids: Iterable[UUID],
        exclude_connection: str | None = None,
    ) -> None: ...

    def enqueue_presence(
        self,
        user_id: UUID,
        version: int,
        online: bool,
        frame: dict[str, object],
        *,
        member_ids: Iterable[UUID],
    ) -> None:
        """A presence transition (``version``) for a large audience; the consumer re-checks it
        is still the user's latest before posting (RealtimeService.deliver_presence)."""
        ...


class FanoutTurns(Protocol):
    """Per (room, sender) tickets that keep a sender's fan-outs in ``seq`` order once the ack no
    longer waits for the fan-out (chatflow.adapters.redis_fanout_turns)."""

    def take(self, room_id: UUID, user_id: UUID, seq: int) -> bool:
        """Queue ``seq`` (before its ack is posted); True when it is first in line already."""
        ...

    def wait(self, room_id: UUID, user_id: UUID, seq: int, *, timeout_s: float) -> bool:
        """Until ``seq`` is first in line; False after ``timeout_s``."""
        ...

    def release(self, room_id: UUID, user_id: UUID, seq: int) -> None: ...


class RoomDirectory(Protocol):
    """What fan-out and presence need from ROOMS: cached member lists."""

    def member_ids(self, room_id: UUID) -> Collection[UUID]: ...
    def room_ids(self, user_id: UUID) -> Collection[UUID]: ...
    def members_of(self, room_ids: Collection[UUID]) -> dict[UUID, Collection[UUID]]:
        """Member ids of several rooms at once (batched; presence)."""
        ...

    def members_among(self, room_id: UUID, user_ids: Collection[UUID]) -> set[UUID]:
        """Which of ``user_ids`` are members now (a fan-out job's chunk): O(chunk), not O(room)."""
        ...


# --- identity (IDENTITY) -------------------------------------------------------------------------
# Implemented by chatflow.adapters.postgres.users_repo (users, refresh tokens) and
# chatflow.adapters.redis_user_status (status cache); used by chatflow.domain.users.UserService.


class UserRepository(Protocol):
    """Users and refresh tokens (Postgres writer: every read here decides authorization)."""

    def create_user(self, user: NewUser) -> User:
        """Insert; Conflict when the handle is taken (case-insensitively)."""
        ...

    def get_user(self, user_id: UUID) -> User | None: ...
    def find_credentials(self, handle: str) -> tuple[User, str] | None:
        """The user with that handle (any case) and their password hash."""
        ...

    def user_status(self, user_id: UUID) -> UserStatus | None: ...
    def provision_external(self, user_id: UUID, issuer: str, subject: str, handle: str) -> UserStatus:
        """Create the user of an external identity if missing (handle suffixed on collision)."""
        ...

    def set_role(self, handle: str, role: str) -> User | None: ...
    def ban(self, user_id: UUID, events: Sequence[DomainEvent]) -> tuple[UserStatus, bool]:
        """status=banned, tokens_valid_after=now, refresh tokens revoked, events enqueued -- one
        transaction. Returns the new status and whether it changed (False: already banned).
        NotFound for an unknown user."""
        ...

    def unban(self, user_id: UUID) -> UserStatus:
        """status=active (old tokens stay void: tokens_valid_after is kept). NotFound if unknown."""
        ...

    def logout_everywhere(self, user_id: UUID) -> UserStatus:
        """tokens_valid_after=now and every refresh token revoked, one transaction."""
        ...

    def delete_user(self, user_id: UUID) -> UserStatus:
        """status=deleted (soft: messages keep their sender), tokens void, refresh tokens revoked."""
        ...

    def change_password(self, user_id: UUID, old_hash: str, new_hash: str) -> UserStatus | None:
        """If the user is active and their hash is still ``old_hash``: the new hash,
        tokens_valid_after=now and every refresh token revoked, one transaction. None otherwise
        (changed meanwhile, disabled, unknown)."""
        ...

    def store_refresh_token(self, token: RefreshTokenRecord) -> None: ...
    def rotate_refresh_token(self, token_hash: bytes, replacement: RefreshTokenRecord) -> RefreshOutcome:
        """Atomically consume ``token_hash`` and store ``replacement`` in the same family; a
        rotated token presented again revokes the whole family (theft detection)."""
        ...

    def revoke_refresh_family(self, token_hash: bytes) -> RevokedFamily | None:
        """Revoke the family of ``token_hash``; returns its user and whether the token was live
        (None if unknown)."""
        ...

    def update_password_hash(self, user_id: UUID, old_hash: str, new_hash: str) -> bool:
        """Replace the password hash if it is still ``old_hash`` (re-hash at a higher cost);
        False when it changed meanwhile."""
        ...


class UserStatusCache(Protocol):
    """Redis cache of users' status, written through on every change (never stale after a ban)."""

    def get(self, user_id: UUID) -> UserStatus | None: ...
    def fill(self, user_id: UUID, status: UserStatus) -> None:
        """Store only if absent (a loader never overwrites a newer value written by a change)."""
        ...

    def put(self, user_id: UUID, status: UserStatus) -> None:
        """Overwrite after a change (ban, unban, logout everywhere, role change)."""
        ...


class LoginThrottle(Protocol):
    """Failed sign-ins per (handle, source IP) and per source IP across handles, with progressive
    back-off (Redis); the service fails open when it is unavailable."""

    def retry_after(self, handle: str, source_ip: str) -> int | None:
        """Seconds until this IP may try this handle again, or None when it may now."""
        ...

    def record_failure(self, handle: str, source_ip: str) -> None: ...
    def reset(self, handle: str, source_ip: str) -> None:
        """A successful sign-in: forget the (handle, IP) failures (not the IP's budget)."""
        ...


class TokenIssuer(Protocol):
    """Signs access tokens (chatflow.auth.tokens.TokenSigner)."""

    def issue(self, *, user_id: UUID, handle: str, role: Role, not_before: float = 0.0) -> IssuedToken: ...


class SessionTerminator(Protocol):
    """Closes a user's live sessions (REALTIME: DeleteConnection on every WebSocket)."""

    def terminate_user_sessions(self, user_id: UUID) -> int:
        """Returns how many sessions were closed."""
        ...
