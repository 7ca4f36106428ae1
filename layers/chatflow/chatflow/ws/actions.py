"""The chat actions of the ``ws_messages`` function: one function per client frame.

Each takes the caller (identity, connection id and the function's services) and the validated
frame, calls ROOMS' services (messages, rooms) and the realtime service, and returns the reply
frame (or None: no reply). Errors are ``chatflow.errors`` exceptions; the handler turns them into
error frames. Messages travel in their one wire shape (:func:`chatflow.wire.message_to_dict`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chatflow.domain.identity import Identity
from chatflow.domain.realtime_models import RateKind, Target
from chatflow.errors import InvalidInput, NotFound
from chatflow.wire import message_to_dict, presence_page_to_dict
from chatflow.ws import frames
from chatflow.ws.protocol import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from chatflow.domain.messages import MessageService
    from chatflow.domain.realtime import RealtimeService
    from chatflow.domain.rooms import RoomService
    from chatflow.domain.users import UserService
    from chatflow.settings import Settings

#: A resume page must fit one frame (API Gateway: 128 KB); keep headroom for the envelope.
_RESUME_BUDGET_BYTES = MAX_MESSAGE_BYTES - 8 * 1024
DEFAULT_RESUME_LIMIT = 50

Reply = dict[str, Any] | None


class WsServices(Protocol):
    """What the WebSocket actions need (the function's container provides it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def realtime(self) -> RealtimeService: ...
    @property
    def rooms(self) -> RoomService: ...
    @property
    def messages(self) -> MessageService: ...
    @property
    def users(self) -> UserService: ...


@dataclass(frozen=True, slots=True)
class Caller:
    identity: Identity
    connection_id: str
    services: WsServices
    #: The frame was already counted against the rate limit (chatflow.ws.admission).
    rate_checked: bool = False

    @property
    def realtime(self) -> RealtimeService:
        return self.services.realtime

    def check_rate(self, kind: RateKind) -> None:
        if not self.rate_checked:
            self.realtime.check_rate(kind, self.connection_id)


def send_message(c: Caller, f: frames.SendMessage) -> Reply:
    """The ack goes out FIRST (over @connections), then the room's fan-out, then the event to the
    bus: the sender waits for neither the room nor EventBridge (docs/protocol.md). A resend (same
    clientMessageId) creates and fans out nothing and is answered with the original ack,
    ``duplicate: true``."""
    c.check_rate("messages")
    # The message.created event goes to the bus after the ack and the fan-out (outbox: safe).
    with c.services.messages.events_held():
        return _send_message(c, f)


def _send_message(c: Caller, f: frames.SendMessage) -> Reply:
    message, created = c.services.messages.send(c.identity, f.room_id, f.client_message_id, f.body)
    payload = message_to_dict(message)
    ack = {
        "type": "ack",
        "clientMessageId": message.client_message_id,
        "roomId": str(message.room_id),
        "seq": message.seq,
        "messageId": str(message.id),
        "createdAt": payload["createdAt"],
        "duplicate": not created,
    }
    if f.request_id:  # posted before dispatch() could add it
        ack["requestId"] = f.request_id
    if not created:
        return ack
    frame = {"type": "message", "message": payload}
    sender = Target(c.identity.user_id, c.connection_id)
    if c.realtime.acknowledge_then_deliver(sender, f.room_id, message.seq, ack, frame):
        return None  # the ack was posted already: no route response
    return ack


def edit_message(c: Caller, f: frames.EditMessage) -> Reply:
    c.check_rate("messages")
    message = c.services.messages.edit(c.identity, f.room_id, f.seq, f.body)
    frame = {"type": "messageEdited", "message": message_to_dict(message)}
    c.realtime.broadcast(
        lambda: c.realtime.deliver_to_room(f.room_id, frame, exclude_connection=c.connection_id)
    )
    return frame


def delete_message(c: Caller, f: frames.DeleteMessage) -> Reply:
    c.check_rate("messages")
    message = c.services.messages.delete(c.identity, f.room_id, f.seq)
    frame = {"type": "messageDeleted", "message": message_to_dict(message)}
    c.realtime.broadcast(
        lambda: c.realtime.deliver_to_room(f.room_id, frame, exclude_connection=c.connection_id)
    )
    return frame


def join_room(c: Caller, f: frames.JoinRoom) -> Reply:
    """Subscribe this connection to the room's live stream (typing); members only."""
    c.check_rate("requests")
    c.services.rooms.require_member(c.identity, f.room_id)
    if not c.realtime.registry.subscribe(c.identity.user_id, c.connection_id, f.room_id):
        raise NotFound("this connection is not registered; reconnect", code="connection_not_found")
    # The first page of the room's presence snapshot: who is online now (the frames that follow
    # are the changes; both carry versions, merged by the one rule -- docs/protocol.md).
    snapshot = presence_page_to_dict(f.room_id, c.realtime.room_presence(f.room_id))
    return {"type": "joined", "roomId": str(f.room_id), "presence": snapshot}


def presence(c: Caller, f: frames.Presence) -> Reply:
    """A page of the room's presence snapshot; members only."""
    c.check_rate("requests")
    c.services.rooms.require_member(c.identity, f.room_id)
    page = c.realtime.room_presence(f.room_id, after=f.cursor, limit=f.limit)
    return {"type": "presenceSnapshot", **presence_page_to_dict(f.room_id, page)}


def leave_room(c: Caller, f: frames.LeaveRoom) -> Reply:
    c.check_rate("requests")
    c.realtime.registry.unsubscribe(c.identity.user_id, c.connection_id, f.room_id)
    return {"type": "left", "roomId": str(f.room_id)}


def typing(c: Caller, f: frames.Typing) -> Reply:
    """Ephemeral: rate-limited, never stored, only to subscribed connections of members."""
    c.check_rate("typing")
    if not c.services.rooms.is_member(f.room_id, c.identity.user_id):
        c.services.rooms.require_member(c.identity, f.room_id)  # raises the right 403/404
    c.realtime.deliver_to_subscribers(
        f.room_id,
        {
            "type": "typing",
            "roomId": str(f.room_id),
            "userId": str(c.identity.user_id),
            "handle": c.identity.handle,
            "isTyping": f.is_typing,
        },
        exclude_connection=c.connection_id,
    )
    return None


def mark_read(c: Caller, f: frames.MarkRead) -> Reply:
    c.check_rate("requests")
    seq = c.services.messages.mark_read(c.identity, f.room_id, f.seq)
    frame = {"type": "read", "roomId": str(f.room_id), "seq": seq}
    # The user's other devices clear their unread badge.
    c.realtime.broadcast(
        lambda: c.realtime.deliver_to_users([c.identity.user_id], frame, exclude_connection=c.connection_id)
    )
    return frame


def resume(c: Caller, f: frames.Resume) -> Reply:
    """Messages after ``sinceSeq`` in order, one bounded page; ``more`` says ask again from
    ``nextSinceSeq``. Deleted messages are included (body null) so the client can drop them."""
    c.check_rate("requests")
    limit = min(f.limit or DEFAULT_RESUME_LIMIT, c.services.settings.history_page_max)
    page = c.services.messages.history(c.identity, f.room_id, after=f.since_seq, limit=limit)
    if f.since_seq > page.last_seq:
        # The client claims messages the room never had (another room's seq, a restored
        # database): answering ``nextSinceSeq = sinceSeq`` would make it skip every message
        # up to that number. Tell it where the room is instead.
        raise InvalidInput(
            f"sinceSeq {f.since_seq} is beyond the room's last message ({page.last_seq})",
            code="seq_beyond_last",
            lastSeq=page.last_seq,
        )
    items: list[dict[str, Any]] = []
    size = 0
    for message in page.messages:
        item = message_to_dict(message)
        item_size = len(json.dumps(item, ensure_ascii=False).encode()) + 1
        if items and size + item_size > _RESUME_BUDGET_BYTES:
            break
        items.append(item)
        size += item_size
    next_since = items[-1]["seq"] if items else f.since_seq
    return {
        "type": "resumed",
        "roomId": str(f.room_id),
        "sinceSeq": f.since_seq,
        "messages": items,
        # Trimmed to the frame budget, or more messages than the page limit: ask again.
        "more": next_since < page.last_seq,
        "nextSinceSeq": next_since,
        "lastSeq": page.last_seq,
    }


def ping(c: Caller, f: frames.Ping) -> Reply:
    """``ping`` normally routes to the ws_ping function; answered here too for completeness."""
    c.realtime.keep_alive(
        c.identity, c.connection_id, recheck=lambda: c.services.users.ensure_active(c.identity)
    )
    return {"type": "pong"}


ACTIONS: dict[type[Any], Callable[[Caller, Any], Reply]] = {
    frames.SendMessage: send_message,
    frames.EditMessage: edit_message,
    frames.DeleteMessage: delete_message,
    frames.JoinRoom: join_room,
    frames.LeaveRoom: leave_room,
    frames.Typing: typing,
    frames.MarkRead: mark_read,
    frames.Resume: resume,
    frames.Presence: presence,
    frames.Ping: ping,
}


def dispatch(caller: Caller, frame: frames.ClientFrame) -> Reply:
    reply = ACTIONS[type(frame)](caller, frame)
    if reply is not None and frame.request_id:
        reply = {**reply, "requestId": frame.request_id}
    return reply
