"""Value objects of the realtime service: connections, registrations, rate decisions, delivery
reports (plain dataclasses, no I/O). Shared by :mod:`chatflow.domain.realtime`, the ports and
the Redis / API Gateway adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

from chatflow.domain.user_models import UserStatus

#: "requests": the other database-touching frames (joinRoom, leaveRoom, markRead, resume).
RateKind = Literal["messages", "typing", "requests"]


@dataclass(frozen=True, slots=True)
class Target:
    """One live connection of one user: where a frame goes."""

    user_id: UUID
    connection_id: str


@dataclass(frozen=True, slots=True)
class Registration:
    accepted: bool
    #: True when this is the user's only live connection (announce "online").
    first: bool
    #: Live connections of the user after the call.
    count: int
    #: The user's presence version for this "online" transition (0 unless ``first``).
    presence_version: int = 0


@dataclass(frozen=True, slots=True)
class Unregistration:
    #: The connection was registered (False: already removed, e.g. by a ban or a 410 cleanup).
    removed: bool
    #: True when the user has no live connection left (announce "offline").
    last: bool
    rooms: tuple[UUID, ...] = ()
    #: The user's presence version for this "offline" transition (0 unless ``last``).
    presence_version: int = 0
    #: Not removed because it was registered within the grace window asked for (a 410 that
    #: raced its ``$connect``).
    kept: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryTargets:
    """Live connections of some users, split by whether their session is still valid."""

    live: list[Target]
    #: Registered, but the user was banned / deleted / logged out everywhere since the session
    #: began: never delivered to (and cleaned up).
    revoked: list[Target]


@dataclass(frozen=True, slots=True)
class RemovedConnections:
    """What ``remove_all`` (a ban) removed."""

    connection_ids: tuple[str, ...]
    #: The presence version of the resulting "offline" transition (0: nothing was removed).
    presence_version: int = 0


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after_ms: int = 0
    #: The user's cached status, read in the same round trip when asked for (``with_status_of``);
    #: None when not asked, not cached or unreadable.
    status: UserStatus | None = None
    #: Whether the connection is still in the registry, read in the same round trip when the
    #: status is asked for (None: not asked). False: it expired or the registry lost its data.
    registered: bool | None = None


@dataclass
class DeliveryReport:
    delivered: list[Target] = field(default_factory=list)
    #: Stale recipients (410): their connections are removed from the registry.
    gone: list[Target] = field(default_factory=list)
    failed: list[Target] = field(default_factory=list)
    #: True when the fan-out was handed to the asynchronous queue instead.
    queued: bool = False


@dataclass(frozen=True, slots=True)
class PresenceEntry:
    """One online user in a presence snapshot: ``version`` is the presence version of the
    transition that made them online (the same number their ``online`` frame carried)."""

    user_id: UUID
    version: int
    #: From the user status cache when it holds the user (None: not cached, look it up).
    handle: str | None = None


@dataclass(frozen=True, slots=True)
class PresencePage:
    """Online members of a room, ordered by user id, at most the page limit of them."""

    online: tuple[PresenceEntry, ...]
    #: More online members after this page: ask again with ``cursor``.
    more: bool = False
    cursor: str | None = None
