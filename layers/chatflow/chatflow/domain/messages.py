"""Messages: send (idempotent, gap-free per-room seq), edit, soft delete, history, read marks.

Contract 3 (:class:`MessageService`; REALTIME and HTTP call exactly these; ``identity`` is
:class:`chatflow.domain.identity.Identity`, the caller already passed ``ensure_active``)::

    send(identity, room_id: UUID, client_message_id: str, body: str) -> tuple[Message, bool]
        One transaction: lock the room row, seq = last_seq + 1, insert the message and its
        MessageCreated outbox row, bump last_seq. created=False: a resend of the same
        (sender, client_message_id) -- the original is returned and nothing is written.
        Errors: InvalidInput (empty/too long body, bad client id), NotFound (no such room, or a
        private room/DM the caller is not in), Forbidden (public room, not a member),
        Conflict (client id already used by this sender in ANOTHER room).
    edit(identity, room_id, seq: int, body: str) -> Message            # author only (Forbidden)
    delete(identity, room_id, seq: int) -> Message                     # author or admin, soft
    history(identity, room_id, *, before: int | None = None, after: int | None = None,
            limit: int | None = None) -> HistoryPage                   # keyset by seq, ascending
    mark_read(identity, room_id, seq: int) -> int                      # new last_read_seq

Membership checks and the cached member list live in :class:`chatflow.domain.rooms.RoomService`
(``member_ids(room_id)``, ``is_member(room_id, user_id)``), which :class:`MessageService` gets
through its constructor with its repository and the settings (the function's container wires
them, chatflow.container).
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from chatflow.domain.room_models import HistoryPage, Membership, Message, Room
from chatflow.domain.validation import CONTROL_CHARS_EXCEPT_WHITESPACE, deny_non_member, is_utf8_text
from chatflow.errors import Conflict, Forbidden, InvalidInput, NotFound
from chatflow.events.schemas import DomainEvent, MessageCreated, MessageDeleted, MessageEdited

if TYPE_CHECKING:
    from chatflow.domain.identity import Identity
    from chatflow.domain.ports import MessageRepository, OutboxFlusher
    from chatflow.domain.rooms import RoomService
    from chatflow.settings import Settings

#: Client message ids: printable, no whitespace, bounded (the event schema allows 200).
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,200}")
#: "@handle" not preceded by a word char or "@" (so e-mail addresses are not mentions).
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_][A-Za-z0-9_.\-]{0,63})")
_MAX_MENTIONS = 50
DEFAULT_HISTORY_LIMIT = 50


def validate_body(body: object, settings: Settings) -> str:
    if not isinstance(body, str):
        raise InvalidInput("body must be a string", code="invalid_body")
    if not body.strip():
        raise InvalidInput("body must not be empty", code="invalid_body")
    if len(body) > settings.max_message_chars:
        raise InvalidInput(
            f"body is longer than {settings.max_message_chars} characters",
            code="body_too_long",
            max=settings.max_message_chars,
        )
    if CONTROL_CHARS_EXCEPT_WHITESPACE.search(body):
        raise InvalidInput("body contains control characters", code="invalid_body")
    if not is_utf8_text(body):
        raise InvalidInput("body is not valid UTF-8 text", code="invalid_body")
    return body


def validate_client_message_id(client_message_id: object) -> str:
    if not isinstance(client_message_id, str) or not _CLIENT_ID.fullmatch(client_message_id):
        raise InvalidInput(
            "clientMessageId must be 1-200 printable characters without spaces",
            code="invalid_client_message_id",
        )
    return client_message_id


def validate_seq(seq: object, name: str = "seq", *, minimum: int = 1) -> int:
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < minimum or seq > 2**62:
        raise InvalidInput(f"{name} must be an integer >= {minimum}", code="invalid_seq")
    return seq


def mention_candidates(body: str) -> list[str]:
    """Distinct ``@handle`` tokens of ``body`` in order of appearance (lower-cased)."""
    seen: dict[str, None] = {}
    for match in _MENTION.finditer(body):
        handle = match.group(1).rstrip(".-").lower()
        if handle:
            seen.setdefault(handle, None)
        if len(seen) >= _MAX_MENTIONS:
            break
    return list(seen)


def _require_member(room: Room, membership: Membership | None) -> None:
    if membership is None:
        raise deny_non_member(room)


class MessageService:
    def __init__(
        self,
        messages: MessageRepository,
        rooms: RoomService,
        settings: Settings,
        *,
        outbox: OutboxFlusher | None = None,
    ) -> None:
        self._messages = messages
        self._rooms = rooms
        self._settings = settings
        self._outbox = outbox

    def events_held(self) -> AbstractContextManager[None]:
        """Hold the after-commit event flush (PutEvents) of the writes made inside the block until
        its end: ``sendMessage`` acks and fans out first, then the ``message.created`` event goes
        to the bus (the transactional outbox keeps it safe meanwhile; the sweep sends it if the
        function dies before the block ends)."""
        return self._outbox.deferred() if self._outbox is not None else nullcontext()

    # --- send ----------------------------------------------------------------------------

    def send(
        self, identity: Identity, room_id: UUID, client_message_id: str, body: str
    ) -> tuple[Message, bool]:
        client_message_id = validate_client_message_id(client_message_id)
        body = validate_body(body, self._settings)
        # A resend (same sender + client id) comes back from insert as (original, False), found
        # in the same round trip as the room lock: no separate look-up first.

        def build_event(message: Message) -> DomainEvent:
            return MessageCreated(
                room_id=message.room_id,
                seq=message.seq,
                message_id=message.id,
                sender_id=message.sender_id,
                sender_handle=message.sender_handle,
                client_message_id=message.client_message_id,
                body=message.body,
                mentions=list(message.mentions),
                created_at=message.created_at,
            )

        message, created = self._messages.insert(
            room_id=room_id,
            message_id=uuid4(),
            sender_id=identity.user_id,
            client_message_id=client_message_id,
            body=body,
            mention_candidates=mention_candidates(body),
            check=_require_member,
            event=build_event,
        )
        if not created:
            # A resend, or a concurrent identical send that won the race; maybe for another room.
            return self._resent(message, room_id)
        return message, True

    @staticmethod
    def _resent(existing: Message, room_id: UUID) -> tuple[Message, bool]:
        if existing.room_id != room_id:
            raise Conflict(
                "clientMessageId was already used for a message in another room",
                code="client_message_id_reused",
            )
        return existing, False

    # --- edit / delete -----------------------------------------------------------------------

    def edit(self, identity: Identity, room_id: UUID, seq: int, body: str) -> Message:
        seq = validate_seq(seq)
        body = validate_body(body, self._settings)
        self._rooms.require_member(identity, room_id)

        def check(message: Message) -> None:
            if message.sender_id != identity.user_id:
                raise Forbidden("only the author can edit a message", code="not_author")
            if message.is_deleted:
                raise Conflict("the message was deleted", code="message_deleted")

        def change(message: Message) -> tuple[Message, DomainEvent] | None:
            now = datetime.now(UTC)
            edited = replace(message, body=body, edited_at=now)
            event = MessageEdited(
                room_id=room_id,
                seq=message.seq,
                message_id=message.id,
                editor_id=identity.user_id,
                body=body,
                edited_at=now,
            )
            return edited, event

        updated = self._messages.update(room_id, seq, check, change)
        if updated is None:
            raise NotFound("message not found", code="message_not_found")
        return updated

    def delete(self, identity: Identity, room_id: UUID, seq: int) -> Message:
        """Delete (author or admin): a tombstone without the text. Deleting a deleted message
        returns it unchanged."""
        seq = validate_seq(seq)
        if not identity.is_admin:
            self._rooms.require_member(identity, room_id)

        def check(message: Message) -> None:
            if message.sender_id != identity.user_id and not identity.is_admin:
                raise Forbidden("only the author or an admin can delete a message", code="not_author")

        def change(message: Message) -> tuple[Message, DomainEvent] | None:
            if message.is_deleted:
                return None
            now = datetime.now(UTC)
            event = MessageDeleted(
                room_id=room_id,
                seq=message.seq,
                message_id=message.id,
                deleted_by=identity.user_id,
                deleted_at=now,
            )
            # Deleted means deleted: the tombstone keeps id, seq, sender and deletedAt, not the
            # text (the store nulls the body; the notifications consumer scrubs its previews).
            return replace(message, body="", deleted_at=now), event

        updated = self._messages.update(room_id, seq, check, change)
        if updated is None:
            raise NotFound("message not found", code="message_not_found")
        return updated

    # --- reads ------------------------------------------------------------------------------

    def history(
        self,
        identity: Identity,
        room_id: UUID,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> HistoryPage:
        """Messages in ascending seq order.

        - neither bound: the latest ``limit`` messages;
        - ``before=N``: the ``limit`` messages just older than N (seq < N);
        - ``after=N``: the ``limit`` messages just newer than N (seq > N);
        - both: the oldest ``limit`` messages strictly between them.
        ``limit`` defaults to 50 and is capped at ``settings.history_page_max``.
        """
        if before is not None:
            before = validate_seq(before, "before")
        if after is not None:
            after = validate_seq(after, "after", minimum=0)
        if before is not None and after is not None and after >= before:
            raise InvalidInput("after must be smaller than before", code="invalid_range")
        if limit is None:
            limit = DEFAULT_HISTORY_LIMIT
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput("limit must be a positive integer", code="invalid_limit")
        limit = min(limit, self._settings.history_page_max)  # documented cap, however large
        # Authorization through the cache (invalidated on every membership change);
        # the page itself from the reader.
        self._rooms.require_member(identity, room_id)
        page = self._messages.history(room_id, before=before, after=after, limit=limit)
        if page is None:
            raise NotFound("room not found", code="room_not_found")
        return page

    def mark_read(self, identity: Identity, room_id: UUID, seq: int) -> int:
        """Move the caller's read position forward to ``seq`` (never back, never past last_seq)."""
        seq = validate_seq(seq, minimum=0)
        return self._rooms.mark_read(identity, room_id, seq)
