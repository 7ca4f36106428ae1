"""Domain event schemas: one pydantic model per event, versioned, with a detail-type registry.

An event travels on EventBridge as ``{"source": settings.event_source, "detail-type":
<detail_type>, "detail": <model JSON>}``. The detail carries ``event_id`` (stable across
redeliveries and replays: consumers deduplicate on it), ``occurred_at`` and ``version``.

Versioning: ``detail_type`` names the event, ``version`` its schema revision. A breaking change
adds a new model with ``version = 2`` for the same detail type, registered in
:data:`VERSIONS`; :data:`REGISTRY` maps each detail type to its current model. Consumers parse
with :func:`parse_detail`, which picks the model by (detail type, version) and refuses unknown
ones. The exported JSON Schemas live in ``events/schemas/`` (``python -m chatflow_dev.events
export-schemas``); a test fails when they are stale.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

__all__ = [
    "REGISTRY",
    "VERSIONS",
    "ConnectionOpened",
    "DomainEvent",
    "InvalidEvent",
    "MemberJoined",
    "MemberLeft",
    "MessageCreated",
    "MessageDeleted",
    "MessageEdited",
    "RoomCreated",
    "UserBanned",
    "UserOffline",
    "UserOnline",
    "ensure_valid",
    "parse_detail",
]

#: A mentioned handle, without the "@" (lenient on purpose: IDENTITY owns the handle rules).
Handle = Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}$")]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class InvalidEvent(ValueError):
    """An event does not match its schema, or its detail type/version is unknown.

    Raised before anything is written or sent: an invalid event is never published.
    """


class DomainEvent(BaseModel):
    """Base of every domain event. Subclasses set ``detail_type`` and pin ``version``."""

    # Serialized details always carry every field: the exported schema says so (required).
    # defer_build: a model's validator is built on first use, so a consumer that sees one or two
    # detail types does not pay for all ten at cold start (~50 ms here).
    model_config = ConfigDict(
        frozen=True, extra="forbid", json_schema_serialization_defaults_required=True, defer_build=True
    )

    detail_type: ClassVar[str]

    event_id: UUID = Field(default_factory=uuid4, description="Unique per event; consumers dedupe on it")
    occurred_at: AwareDatetime = Field(default_factory=_utcnow, description="When the change happened (UTC)")
    version: int = Field(description="Schema version of this detail type")

    def detail(self) -> dict[str, Any]:
        """The EventBridge ``detail`` object (JSON-ready)."""
        return self.model_dump(mode="json")


# --- messages ------------------------------------------------------------------------------


class MessageCreated(DomainEvent):
    """A message was stored (sent through WebSocket or HTTP)."""

    detail_type: ClassVar[str] = "message.created"
    version: Literal[1] = 1
    room_id: UUID
    seq: int = Field(ge=1)
    message_id: UUID
    sender_id: UUID
    sender_handle: str = Field(min_length=1, max_length=64)
    client_message_id: str = Field(min_length=1, max_length=200)
    body: str = Field(max_length=16_000)
    mentions: list[Handle] = Field(default_factory=list, description="Mentioned handles, without '@'")
    created_at: AwareDatetime


class MessageEdited(DomainEvent):
    detail_type: ClassVar[str] = "message.edited"
    version: Literal[1] = 1
    room_id: UUID
    seq: int = Field(ge=1)
    message_id: UUID
    editor_id: UUID
    body: str = Field(max_length=16_000)
    edited_at: AwareDatetime


class MessageDeleted(DomainEvent):
    detail_type: ClassVar[str] = "message.deleted"
    version: Literal[1] = 1
    room_id: UUID
    seq: int = Field(ge=1)
    message_id: UUID
    deleted_by: UUID
    deleted_at: AwareDatetime


# --- rooms and membership ------------------------------------------------------------------


class RoomCreated(DomainEvent):
    detail_type: ClassVar[str] = "room.created"
    version: Literal[1] = 1
    room_id: UUID
    kind: Literal["public", "private", "dm"]
    name: str | None = None
    created_by: UUID


class MemberJoined(DomainEvent):
    """A user became a member (joined themselves: ``added_by`` is None; or was added)."""

    detail_type: ClassVar[str] = "member.joined"
    version: Literal[1] = 1
    room_id: UUID
    user_id: UUID
    added_by: UUID | None = None


class MemberLeft(DomainEvent):
    detail_type: ClassVar[str] = "member.left"
    version: Literal[1] = 1
    room_id: UUID
    user_id: UUID
    removed_by: UUID | None = None


# --- users, presence, connections ----------------------------------------------------------


class UserOnline(DomainEvent):
    detail_type: ClassVar[str] = "user.online"
    version: Literal[1] = 1
    user_id: UUID


class UserOffline(DomainEvent):
    detail_type: ClassVar[str] = "user.offline"
    version: Literal[1] = 1
    user_id: UUID


class UserBanned(DomainEvent):
    detail_type: ClassVar[str] = "user.banned"
    version: Literal[1] = 1
    user_id: UUID
    banned_by: UUID


class ConnectionOpened(DomainEvent):
    detail_type: ClassVar[str] = "connection.opened"
    version: Literal[1] = 1
    user_id: UUID
    connection_id: str = Field(min_length=1, max_length=128)


_MODELS: tuple[type[DomainEvent], ...] = (
    MessageCreated,
    MessageEdited,
    MessageDeleted,
    RoomCreated,
    MemberJoined,
    MemberLeft,
    UserOnline,
    UserOffline,
    UserBanned,
    ConnectionOpened,
)


def _model_version(model: type[DomainEvent]) -> int:
    default = model.model_fields["version"].default
    assert isinstance(default, int), model
    return default


#: (detail type, version) -> model, every schema revision still accepted by consumers.
VERSIONS: dict[tuple[str, int], type[DomainEvent]] = {(m.detail_type, _model_version(m)): m for m in _MODELS}

#: detail type -> the current model (the one producers emit).
REGISTRY: dict[str, type[DomainEvent]] = {}
for _model in _MODELS:
    _current = REGISTRY.get(_model.detail_type)
    if _current is None or _model_version(_model) > _model_version(_current):
        REGISTRY[_model.detail_type] = _model


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_detail(detail_type: str, detail: dict[str, Any] | str | bytes) -> DomainEvent:
    """Validate an EventBridge detail against the schema of its detail type and version.

    Raises :class:`InvalidEvent` for an unknown detail type or version, or a detail that does
    not match the schema.
    """
    if isinstance(detail, str | bytes):
        try:
            detail = json.loads(detail)
        except ValueError as exc:
            raise InvalidEvent(f"{detail_type}: detail is not JSON ({exc})") from None
    if not isinstance(detail, dict):
        raise InvalidEvent(f"{detail_type}: detail must be an object")
    if detail_type not in REGISTRY:
        raise InvalidEvent(f"unknown detail type {detail_type!r}")
    version = detail.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidEvent(f"{detail_type}: detail.version must be an integer")
    model = VERSIONS.get((detail_type, version))
    if model is None:
        raise InvalidEvent(f"{detail_type}: unsupported version {version}")
    try:
        return model.model_validate(detail)
    except ValidationError as exc:
        raise InvalidEvent(f"{detail_type} v{version}: {_describe(exc)}") from None


def ensure_valid(event: DomainEvent) -> DomainEvent:
    """Re-validate an event before it is stored or published.

    Models are validated on construction, but ``model_construct`` or mutation through
    ``__dict__`` can bypass that; a round trip through the JSON detail catches both, and also
    refuses event classes that are not registered.
    """
    if not isinstance(event, DomainEvent):
        raise InvalidEvent(f"not a domain event: {type(event).__name__}")
    detail_type = getattr(type(event), "detail_type", None)
    if not isinstance(detail_type, str) or REGISTRY.get(detail_type) is None:
        raise InvalidEvent(f"unregistered event class {type(event).__name__}")
    try:
        detail = event.model_dump(mode="json", warnings=False)
    except Exception as exc:  # serialization of a bypassed, malformed value
        raise InvalidEvent(f"{detail_type}: cannot serialize ({exc})") from None
    return parse_detail(detail_type, detail)
