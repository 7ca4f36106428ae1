"""Rooms and memberships: channels (public/private), DMs, join/leave, invite/remove, read marks.

:class:`RoomService` (ports through its constructor; the function's container builds it). What
other areas call (``identity``: :class:`chatflow.domain.identity.Identity`)::

    member_ids(room_id: UUID) -> list[UUID]            # cached (Redis), invalidated on change
    is_member(room_id: UUID, user_id: UUID) -> bool    # cached
    room_ids_for_user(user_id: UUID) -> frozenset[UUID]  # cached
    require_member(identity, room_id) -> Room          # NotFound / Forbidden (see below)
    create_channel(identity, kind, name, topic="") -> RoomView
    get_room(identity, room_id) -> RoomView
    list_my_rooms(identity, cursor=None, limit=None) -> Page[RoomView]     # with unread counts
    list_public_rooms(identity, cursor=None, limit=None) -> Page[RoomView]  # discoverable
    join(identity, room_id) -> RoomView                # public channels only
    leave(identity, room_id) -> None
    add_member(identity, room_id, *, user_id=None, handle=None) -> UserRef   # owner only
    remove_member(identity, room_id, user_id) -> None  # owner only; access ends at once
    open_dm(identity, *, user_id=None, handle=None) -> tuple[RoomView, bool]  # create-or-get

Visibility rules (HTTP status in brackets):
- A public channel is visible to everyone; reading or writing in it needs membership [403].
- A private channel or DM does not exist for non-members [404] -- its existence is not leaked.
- An owner who leaves hands ownership to the oldest remaining member (earliest joined_at); the
  last member (then necessarily the owner) cannot leave [409].
- DMs have exactly two members for life: they cannot be joined, left or invited to [403].

Every membership change invalidates the cache entries of the room and of the affected users
right after COMMIT, in the same request, so a removed member loses access at once.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from chatflow.domain.room_models import ChannelKind, Membership, Page, Room, RoomView, UserRef
from chatflow.domain.validation import CONTROL_CHARS, deny_non_member, is_utf8_text, room_not_found
from chatflow.errors import Conflict, Forbidden, InvalidInput, NotFound
from chatflow.events.schemas import MemberJoined, MemberLeft, RoomCreated

if TYPE_CHECKING:
    from chatflow.domain.identity import Identity
    from chatflow.domain.ports import OutboxFlusher, RoomCache, RoomRepository

_NAME = re.compile(r"\w[\w .\-]{0,79}")
MAX_TOPIC_CHARS = 250
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 100


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name.strip()):
        raise InvalidInput(
            "name must be 1-80 letters, digits, spaces, '.', '-' or '_' and start with a letter or digit",
            code="invalid_name",
        )
    return name.strip()


def validate_topic(topic: object) -> str:
    if (
        not isinstance(topic, str)
        or len(topic) > MAX_TOPIC_CHARS
        or CONTROL_CHARS.search(topic)
        or not is_utf8_text(topic)
    ):
        raise InvalidInput(f"topic must be at most {MAX_TOPIC_CHARS} characters", code="invalid_topic")
    return topic.strip()


def _limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIST_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput("limit must be a positive integer", code="invalid_limit")
    return min(limit, MAX_LIST_LIMIT)


class RoomService:
    def __init__(self, repo: RoomRepository, cache: RoomCache, outbox: OutboxFlusher) -> None:
        self._repo = repo
        self._cache = cache
        self._outbox = outbox

    # --- cached lookups (authorization) -------------------------------------------------------

    def room(self, room_id: UUID) -> Room | None:
        return self._cache.room(room_id, lambda: self._repo.find_room(room_id))

    def member_ids(self, room_id: UUID) -> list[UUID]:
        return list(self._cache.member_ids(room_id, lambda: self._repo.member_ids(room_id)))

    def _access(self, room_id: UUID, user_id: UUID) -> tuple[Room | None, bool]:
        return self._cache.access(
            room_id,
            user_id,
            lambda: self._repo.find_room(room_id),
            lambda: self._repo.member_ids(room_id),
        )

    def is_member(self, room_id: UUID, user_id: UUID) -> bool:
        return self._access(room_id, user_id)[1]

    def room_ids_for_user(self, user_id: UUID) -> frozenset[UUID]:
        return self._cache.room_ids(user_id, lambda: self._repo.room_ids_for_user(user_id))

    def require_member(self, identity: Identity, room_id: UUID) -> Room:
        """The room, if the caller is a member; else NotFound (private/DM/missing) or Forbidden."""
        room, member = self._access(room_id, identity.user_id)
        if room is None:
            raise room_not_found()
        if not member:
            raise deny_non_member(room)
        return room

    # --- reads ---------------------------------------------------------------------------------

    def get_room(self, identity: Identity, room_id: UUID) -> RoomView:
        room, member = self._access(room_id, identity.user_id)
        if room is None or (room.kind != "public" and not member):
            raise room_not_found()
        view = self._repo.room_view(room_id, identity.user_id)
        if view is None:  # replica lag right after creation: ask the writer
            view = self._repo.room_view(room_id, identity.user_id, consistent=True)
        if view is None:
            raise room_not_found()
        return view

    def list_my_rooms(
        self, identity: Identity, cursor: str | None = None, limit: int | None = None
    ) -> Page[RoomView]:
        return self._repo.list_member_rooms(identity.user_id, cursor, _limit(limit))

    def list_public_rooms(
        self, identity: Identity, cursor: str | None = None, limit: int | None = None
    ) -> Page[RoomView]:
        return self._repo.list_public_rooms(identity.user_id, cursor, _limit(limit))

    # --- channels ------------------------------------------------------------------------------

    def create_channel(self, identity: Identity, kind: ChannelKind, name: str, topic: str = "") -> RoomView:
        if kind not in ("public", "private"):
            raise InvalidInput("kind must be 'public' or 'private'", code="invalid_kind")
        name = validate_name(name)
        topic = validate_topic(topic)
        now = datetime.now(UTC)
        room = Room(
            id=uuid4(), kind=kind, name=name, topic=topic, created_by=identity.user_id, created_at=now
        )
        event = RoomCreated(room_id=room.id, kind=kind, name=name, created_by=identity.user_id)
        with self._outbox.deferred():  # the cache first, then the (best-effort, maybe slow) PutEvents
            self._repo.create_channel(room, [event])
            self._cache.invalidate(user_ids=[identity.user_id])
        owner = Membership(
            room_id=room.id, user_id=identity.user_id, role="owner", last_read_seq=0, joined_at=now
        )
        return RoomView(room=room, last_seq=0, member_count=1, membership=owner)

    def join(self, identity: Identity, room_id: UUID) -> RoomView:
        def check(room: Room, membership: Membership | None) -> None:
            if room.kind == "dm":
                if membership is None:
                    raise room_not_found()
                raise Forbidden("direct messages cannot be joined", code="dm_membership_fixed")
            if membership is not None:
                raise Conflict("already a member", code="already_member")
            if room.kind == "private":
                raise room_not_found()  # private rooms need an invitation and stay invisible

        event = MemberJoined(room_id=room_id, user_id=identity.user_id, added_by=None)
        with self._outbox.deferred():
            self._repo.add_member(room_id, identity.user_id, identity.user_id, check, [event])
            self._cache.invalidate(room_ids=[room_id], user_ids=[identity.user_id])
        view = self._repo.room_view(room_id, identity.user_id, consistent=True)
        if view is None:
            raise room_not_found()
        return view

    def leave(self, identity: Identity, room_id: UUID) -> None:
        def check(room: Room, membership: Membership | None) -> None:
            if membership is None:
                if room.kind == "public":
                    raise Conflict("not a member", code="not_a_member")
                raise room_not_found()
            if room.kind == "dm":
                raise Forbidden("direct messages cannot be left", code="dm_membership_fixed")

        event = MemberLeft(room_id=room_id, user_id=identity.user_id, removed_by=None)
        with self._outbox.deferred():
            self._repo.remove_member(room_id, identity.user_id, identity.user_id, check, [event])
            self._cache.invalidate(room_ids=[room_id], user_ids=[identity.user_id])

    def _resolve_user(self, user_id: UUID | None, handle: str | None) -> UserRef:
        if (user_id is None) == (handle is None):
            raise InvalidInput("give exactly one of userId or handle", code="invalid_target")
        if handle is not None:
            handle = handle.strip().removeprefix("@")
            if not handle:
                raise InvalidInput("handle must not be empty", code="invalid_target")
            if CONTROL_CHARS.search(handle) or not is_utf8_text(handle):
                # No handle holds such characters (and Postgres text cannot even take them).
                raise NotFound("user not found", code="user_not_found")
        user = self._repo.find_user(user_id=user_id, handle=handle)
        if user is None or user.status == "deleted":
            raise NotFound("user not found", code="user_not_found")
        if user.status == "banned":
            raise Forbidden("the user is banned", code="user_banned")
        return user

    @staticmethod
    def _owner_check(room: Room, membership: Membership | None) -> None:
        if membership is None:
            raise deny_non_member(room)
        if room.kind == "dm":
            raise Forbidden("direct messages have exactly two members", code="dm_membership_fixed")
        if membership.role != "owner":
            raise Forbidden("only the room owner can manage members", code="not_owner")

    def add_member(
        self, identity: Identity, room_id: UUID, *, user_id: UUID | None = None, handle: str | None = None
    ) -> UserRef:
        target = self._resolve_user(user_id, handle)
        event = MemberJoined(room_id=room_id, user_id=target.id, added_by=identity.user_id)
        with self._outbox.deferred():
            self._repo.add_member(room_id, target.id, identity.user_id, self._owner_check, [event])
            self._cache.invalidate(room_ids=[room_id], user_ids=[target.id])
        return target

    def remove_member(self, identity: Identity, room_id: UUID, user_id: UUID) -> None:
        if user_id == identity.user_id:
            raise InvalidInput("use leave to remove yourself", code="cannot_remove_self")
        event = MemberLeft(room_id=room_id, user_id=user_id, removed_by=identity.user_id)
        with self._outbox.deferred():
            self._repo.remove_member(room_id, user_id, identity.user_id, self._owner_check, [event])
            # Same request, right after COMMIT: the removed member's next request is refused.
            self._cache.invalidate(room_ids=[room_id], user_ids=[user_id])

    # --- DMs -------------------------------------------------------------------------------------

    def open_dm(
        self, identity: Identity, *, user_id: UUID | None = None, handle: str | None = None
    ) -> tuple[RoomView, bool]:
        """Create or get the DM between the caller and one other active user (idempotent)."""
        peer = self._resolve_user(user_id, handle)
        if peer.id == identity.user_id:
            raise InvalidInput("you cannot open a direct message with yourself", code="dm_self")
        low, high = sorted((identity.user_id, peer.id))
        candidate = Room(
            id=uuid4(),
            kind="dm",
            name=None,
            topic="",
            created_by=identity.user_id,
            created_at=datetime.now(UTC),
            dm_user_low=low,
            dm_user_high=high,
        )
        events = [
            RoomCreated(room_id=candidate.id, kind="dm", name=None, created_by=identity.user_id),
            MemberJoined(room_id=candidate.id, user_id=peer.id, added_by=identity.user_id),
        ]
        with self._outbox.deferred():
            room, created = self._repo.get_or_create_dm(candidate, events)
            if created:
                self._cache.invalidate(room_ids=[room.id], user_ids=[low, high])
        view = self._repo.room_view(room.id, identity.user_id, consistent=True)
        if view is None:
            raise room_not_found()
        return view, created

    # --- read marks ------------------------------------------------------------------------------

    def mark_read(self, identity: Identity, room_id: UUID, seq: int) -> int:
        position = self._repo.mark_read(room_id, identity.user_id, seq)
        if position is None:
            room = self.room(room_id)
            raise room_not_found() if room is None else deny_non_member(room)
        return position
