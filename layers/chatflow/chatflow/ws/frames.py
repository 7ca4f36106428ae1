"""Client -> server frames as pydantic models (one per action, discriminated on ``action``).

Unknown fields are refused (``extra="forbid"``) so a typo is an error frame, not a silent no-op.
Cold start: the models are built on first use (``defer_build``) and a frame with a known
``action`` is validated by its own model, so the first ``sendMessage`` of a fresh container builds
one model, not ten (docs/performance.md); anything else goes through the discriminated union,
whose errors (missing or unknown ``action``) are the ones clients see.
Domain rules (body length vs ``settings.max_message_chars``, client message id syntax) are
checked again by ROOMS' domain, which owns them; the limits here only bound the input.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

from chatflow.errors import InvalidInput
from chatflow.ws.protocol import client_text, valid_request_id

#: Problems listed in an ``invalid_frame`` error: the reply must fit one frame even when the
#: client sent thousands of unknown (or huge) field names.
MAX_LISTED_PROBLEMS = 10
#: Larger than any sane message: ROOMS' max_message_chars is the real limit (default 4,000).
_MAX_BODY = 128 * 1024
Seq = Annotated[StrictInt, Field(ge=1, le=2**62)]
#: Optional and only echoed: a value that is not a 1-64 character string (a number, "", a list,
#: 65 characters, ...) becomes None -- not echoed, and the frame is still processed.
RequestId = Annotated[str | None, BeforeValidator(valid_request_id)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    request_id: RequestId = Field(default=None, alias="requestId")


class _RoomFrame(_Frame):
    room_id: UUID = Field(alias="roomId")


class Ping(_Frame):
    action: Literal["ping"]


class SendMessage(_RoomFrame):
    action: Literal["sendMessage"]
    client_message_id: Annotated[str, Field(min_length=1, max_length=200)] = Field(alias="clientMessageId")
    body: Annotated[str, Field(min_length=1, max_length=_MAX_BODY)]


class EditMessage(_RoomFrame):
    action: Literal["editMessage"]
    seq: Seq
    body: Annotated[str, Field(min_length=1, max_length=_MAX_BODY)]


class DeleteMessage(_RoomFrame):
    action: Literal["deleteMessage"]
    seq: Seq


class JoinRoom(_RoomFrame):
    action: Literal["joinRoom"]


class LeaveRoom(_RoomFrame):
    action: Literal["leaveRoom"]


class Typing(_RoomFrame):
    action: Literal["typing"]
    #: False = stopped typing (clients may send it when the input is cleared).
    is_typing: StrictBool = Field(default=True, alias="isTyping")


class MarkRead(_RoomFrame):
    action: Literal["markRead"]
    seq: Annotated[StrictInt, Field(ge=0, le=2**62)]


class Resume(_RoomFrame):
    action: Literal["resume"]
    since_seq: Annotated[StrictInt, Field(ge=0, le=2**62)] = Field(alias="sinceSeq")
    limit: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None


class Presence(_RoomFrame):
    """Who is online in the room now (a snapshot page); ``cursor`` from the previous page."""

    action: Literal["presence"]
    cursor: UUID | None = None
    limit: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None


ClientFrame = Annotated[
    Ping
    | SendMessage
    | EditMessage
    | DeleteMessage
    | JoinRoom
    | LeaveRoom
    | Typing
    | MarkRead
    | Resume
    | Presence,
    Field(discriminator="action"),
]
#: ``action`` -> its model (the union's members, by their literal tag).
_BY_ACTION: dict[str, type[_Frame]] = {
    model.model_fields["action"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (
        Ping,
        SendMessage,
        EditMessage,
        DeleteMessage,
        JoinRoom,
        LeaveRoom,
        Typing,
        MarkRead,
        Resume,
        Presence,
    )
}


@functools.cache
def _union() -> TypeAdapter[ClientFrame]:
    return TypeAdapter(ClientFrame)


def parse_frame(data: dict[str, Any]) -> ClientFrame:
    """Validate a decoded frame; InvalidInput (code ``invalid_frame``) lists every problem."""
    action = data.get("action")
    model = _BY_ACTION.get(action) if isinstance(action, str) else None
    try:
        if model is not None:
            return model.model_validate(data)  # type: ignore[return-value]
        return _union().validate_python(data)  # missing / unknown action: the union's errors
    except ValidationError as exc:
        # The union's locations start with the tag; a member model's do not.
        skip = 0 if model is not None else 1
        problems = [
            {"field": _field(err["loc"], skip), "problem": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)[:MAX_LISTED_PROBLEMS]
        ]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
        raise InvalidInput(f"invalid frame: {summary}", code="invalid_frame", errors=problems) from None


def _field(loc: tuple[int | str, ...], skip: int = 1) -> str:
    """Error location without the union tag (``skip``); no location left is about ``action``."""
    if len(loc) > skip:
        return client_text(".".join(str(p) for p in loc[skip:]), limit=100)
    return "action"
