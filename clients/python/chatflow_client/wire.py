"""Everything the client reads from the wire, parsed in ONE place and tolerantly.

Unknown fields are ignored and unknown frame types come back as :class:`UnknownFrame`, so a newer
server (new fields, new frames) does not break an older client. A frame whose required fields are
missing or of the wrong type is also an :class:`UnknownFrame` (never an exception).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from chatflow_client.models import (
    Ack,
    HistoryPage,
    Message,
    Peer,
    Presence,
    PresenceStatus,
    Room,
    TokenPair,
    User,
)

Json = Mapping[str, Any]


class _Malformed(ValueError):
    pass


# --- field readers -----------------------------------------------------------------------------


def _req_str(data: Json, key: str) -> str:
    value = data.get(key)
    if isinstance(value, str) and value:
        return value
    raise _Malformed(key)


def _opt_str(data: Json, key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _req_int(data: Json, key: str) -> int:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Malformed(key)


def _opt_int(data: Json, key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_bool(data: Json, key: str, default: bool = False) -> bool:
    value = data.get(key)
    return value if isinstance(value, bool) else default


def _dt(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _obj(value: object) -> Json:
    if isinstance(value, Mapping):
        return cast(Json, value)
    raise _Malformed("object expected")


# --- values -------------------------------------------------------------------------------------


def message(data: object, room_id: str | None = None) -> Message:
    d = _obj(data)
    return Message(
        id=_req_str(d, "id"),
        room_id=_opt_str(d, "roomId") or _required(room_id, "roomId"),
        seq=_req_int(d, "seq"),
        sender_id=_req_str(d, "senderId"),
        sender_handle=_opt_str(d, "senderHandle"),
        client_message_id=_opt_str(d, "clientMessageId"),
        body=_opt_str(d, "body"),
        created_at=_dt(d.get("createdAt")),
        edited_at=_dt(d.get("editedAt")),
        deleted_at=_dt(d.get("deletedAt")),
    )


def _required(value: str | None, key: str) -> str:
    if value is None:
        raise _Malformed(key)
    return value


def user(data: object) -> User:
    d = _obj(data)
    return User(
        id=_req_str(d, "id"),
        handle=_req_str(d, "handle"),
        display_name=_opt_str(d, "displayName"),
        role=_opt_str(d, "role") or "user",
        status=_opt_str(d, "status") or "active",
    )


def token_pair(data: object) -> TokenPair:
    d = _obj(data)
    expires = d.get("expiresIn")
    raw_user = d.get("user")
    return TokenPair(
        access_token=_req_str(d, "accessToken"),
        refresh_token=_opt_str(d, "refreshToken"),
        expires_in=float(expires) if isinstance(expires, int | float) else None,
        user=user(raw_user) if isinstance(raw_user, Mapping) else None,
    )


def room(data: object) -> Room:
    d = _obj(data)
    peer = d.get("peer")
    return Room(
        id=_req_str(d, "id"),
        kind=_opt_str(d, "kind") or "public",
        name=_opt_str(d, "name"),
        topic=_opt_str(d, "topic"),
        last_seq=_opt_int(d, "lastSeq") or 0,
        member_count=_opt_int(d, "memberCount") or 0,
        is_member=_opt_bool(d, "isMember"),
        role=_opt_str(d, "role"),
        last_read_seq=_opt_int(d, "lastReadSeq"),
        unread=_opt_int(d, "unread") or 0,
        peer=Peer(_req_str(peer, "id"), _req_str(peer, "handle"), _opt_str(peer, "displayName"))
        if isinstance(peer, Mapping)
        else None,
    )


def history_page(data: object, room_id: str) -> HistoryPage:
    d = _obj(data)
    items = d.get("messages")
    return HistoryPage(
        room_id=room_id,
        messages=[message(m, room_id) for m in items] if isinstance(items, list) else [],
        last_seq=_opt_int(d, "lastSeq") or 0,
        prev_cursor=_opt_int(d, "prevCursor"),
        next_cursor=_opt_int(d, "nextCursor"),
    )


def presence_entry(data: object, status: PresenceStatus = "online") -> Presence:
    d = _obj(data)
    raw_status = d.get("status", status)
    return Presence(
        user_id=_req_str(d, "userId"),
        status="offline" if raw_status == "offline" else "online",
        version=_opt_int(d, "version"),
        handle=_opt_str(d, "handle"),
    )


# --- server frames ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    request_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True, slots=True)
class MessageFrame(Frame):
    kind: str  # message | messageEdited | messageDeleted
    message: Message


@dataclass(frozen=True, slots=True)
class AckFrame(Frame):
    ack: Ack


@dataclass(frozen=True, slots=True)
class ErrorFrame(Frame):
    code: str
    message: str
    action: str | None
    extra: Json


@dataclass(frozen=True, slots=True)
class GatewayErrorFrame(Frame):
    """API Gateway's own error frame (``{"message": "Internal server error", ...}``): no ``type``,
    and its ``requestId`` is the gateway's, never the client's."""

    message: str


@dataclass(frozen=True, slots=True)
class TypingFrame(Frame):
    room_id: str
    user_id: str
    handle: str | None
    is_typing: bool


@dataclass(frozen=True, slots=True)
class PresenceFrame(Frame):
    presence: Presence


@dataclass(frozen=True, slots=True)
class PresenceSnapshotFrame(Frame):
    room_id: str
    online: list[Presence]
    more: bool
    #: Paging token of a partial snapshot, if the server gives one.
    cursor: str | None


@dataclass(frozen=True, slots=True)
class ReadFrame(Frame):
    room_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class ResumedFrame(Frame):
    room_id: str
    since_seq: int
    messages: list[Message]
    more: bool
    next_since_seq: int
    last_seq: int | None


@dataclass(frozen=True, slots=True)
class JoinedFrame(Frame):
    room_id: str
    presence: PresenceSnapshotFrame | None


@dataclass(frozen=True, slots=True)
class LeftFrame(Frame):
    room_id: str


@dataclass(frozen=True, slots=True)
class PongFrame(Frame):
    server_time: int | None


@dataclass(frozen=True, slots=True)
class ResyncFrame(Frame):
    """The server lost its connection registry: resubscribe and resume every room."""


@dataclass(frozen=True, slots=True)
class UnknownFrame(Frame):
    type: str | None
    data: Json


def _presence_entries(items: object) -> list[Presence]:
    """The well-formed entries of a snapshot list (one bad entry does not lose the others)."""
    out: list[Presence] = []
    for item in items if isinstance(items, list) else []:
        try:
            out.append(presence_entry(item))
        except _Malformed:
            continue
    return out


def _snapshot(d: Json, room_id: str, request_id: str | None) -> PresenceSnapshotFrame:
    cursor = d.get("cursor", d.get("nextCursor"))
    return PresenceSnapshotFrame(
        room_id=room_id,
        online=_presence_entries(d.get("online")),
        more=_opt_bool(d, "more"),
        cursor=cursor if isinstance(cursor, str) else None,
        request_id=request_id,
    )


def server_frame(raw: str | bytes) -> Frame:
    """Parse one frame from the server; never raises."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return UnknownFrame(None, {})
    if not isinstance(data, dict):
        return UnknownFrame(None, {})
    rid = data.get("requestId")
    request_id = rid if isinstance(rid, str) else None
    kind = data.get("type")
    try:
        return _typed(kind, data, request_id)
    except _Malformed:
        return UnknownFrame(kind if isinstance(kind, str) else None, data, request_id=request_id)


def _typed(kind: object, d: Json, request_id: str | None) -> Frame:
    if kind in ("message", "messageEdited", "messageDeleted"):
        return MessageFrame(str(kind), message(d.get("message")), request_id=request_id)
    if kind == "ack":
        ack = Ack(
            client_message_id=_req_str(d, "clientMessageId"),
            room_id=_req_str(d, "roomId"),
            seq=_req_int(d, "seq"),
            message_id=_req_str(d, "messageId"),
            created_at=_dt(d.get("createdAt")),
            duplicate=_opt_bool(d, "duplicate"),
        )
        return AckFrame(ack, request_id=request_id)
    if kind == "error":
        known = {"type", "code", "message", "action", "requestId"}
        return ErrorFrame(
            code=_opt_str(d, "code") or "unknown_error",
            message=_opt_str(d, "message") or "",
            action=_opt_str(d, "action"),
            extra={k: v for k, v in d.items() if k not in known},
            request_id=request_id,
        )
    if kind == "typing":
        return TypingFrame(
            _req_str(d, "roomId"),
            _req_str(d, "userId"),
            _opt_str(d, "handle"),
            _opt_bool(d, "isTyping", True),
            request_id=request_id,
        )
    if kind == "presence":
        return PresenceFrame(presence_entry(d, "offline"), request_id=request_id)
    if kind == "presenceSnapshot":
        return _snapshot(d, _req_str(d, "roomId"), request_id)
    if kind == "read":
        return ReadFrame(_req_str(d, "roomId"), _req_int(d, "seq"), request_id=request_id)
    if kind == "resumed":
        room_id = _req_str(d, "roomId")
        items = d.get("messages")
        messages = [message(m, room_id) for m in items] if isinstance(items, list) else []
        since = _req_int(d, "sinceSeq")
        return ResumedFrame(
            room_id=room_id,
            since_seq=since,
            messages=messages,
            more=_opt_bool(d, "more"),
            next_since_seq=_opt_int(d, "nextSinceSeq") or (messages[-1].seq if messages else since),
            last_seq=_opt_int(d, "lastSeq"),
            request_id=request_id,
        )
    if kind == "joined":
        room_id = _req_str(d, "roomId")
        presence = d.get("presence")
        snapshot = _snapshot(presence, room_id, request_id) if isinstance(presence, Mapping) else None
        return JoinedFrame(room_id, snapshot, request_id=request_id)
    if kind == "left":
        return LeftFrame(_req_str(d, "roomId"), request_id=request_id)
    if kind == "pong":
        return PongFrame(_opt_int(d, "serverTime"), request_id=request_id)
    if kind == "resync":
        return ResyncFrame(request_id=request_id)
    if kind is None and isinstance(d.get("message"), str):
        return GatewayErrorFrame(str(d["message"]))  # its requestId is API Gateway's, not ours
    return UnknownFrame(kind if isinstance(kind, str) else None, d, request_id=request_id)


def error_body(status: int, data: object) -> tuple[str, str, Json]:
    """``(code, message, details)`` of an HTTP error body: the API's ``{"error": {...}}`` envelope
    or API Gateway's ``{"message": ...}``."""
    if isinstance(data, Mapping):
        err = data.get("error")
        if isinstance(err, Mapping):
            details = err.get("details")
            return (
                _opt_str(err, "code") or f"http_{status}",
                _opt_str(err, "message") or "",
                cast(Json, details) if isinstance(details, Mapping) else {},
            )
        if isinstance(data.get("message"), str):
            return f"http_{status}", str(data["message"]), {}
    return f"http_{status}", "", {}
