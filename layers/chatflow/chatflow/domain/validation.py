"""The small rules several parts share, written once: handles, control characters, storable
text, and how a non-member is refused.

Pure (``re`` only, so ``$default`` and the authorizer pay nothing for it): the domain, the
transports, the token verifier and the adapters may all use it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from chatflow.errors import ChatflowError, Forbidden, InvalidInput, NotFound

if TYPE_CHECKING:
    from chatflow.domain.room_models import Room

# --- handles --------------------------------------------------------------------------------

#: The characters of a stored handle (lower-case; regex character-class body, '-' escaped).
HANDLE_CHARS = r"a-z0-9_.\-"
HANDLE_MIN_CHARS = 3
HANDLE_MAX_CHARS = 32
HANDLE_RE = re.compile(rf"^[{HANDLE_CHARS}]{{{HANDLE_MIN_CHARS},{HANDLE_MAX_CHARS}}}$")
#: What clients may send at registration: the handle characters in either case (stored lower).
HANDLE_INPUT_PATTERN = rf"^[{HANDLE_CHARS}A-Z]+$"
#: Everything that is not a handle character (to derive a handle from other text).
NOT_HANDLE_CHARS = re.compile(rf"[^{HANDLE_CHARS}]+")


def normalize_handle(handle: str) -> str:
    """The stored form of a handle; InvalidInput when it breaks the rules."""
    normalized = handle.strip().lower()
    if not HANDLE_RE.match(normalized):
        raise InvalidInput("handle must be 3-32 characters of a-z, 0-9, '_', '.', '-'", code="invalid_handle")
    return normalized


# --- control characters and storable text ---------------------------------------------------

#: C0 controls and DEL: nothing a name, topic or handle may hold.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
#: The same minus tab, line feed and carriage return, which a chat message may hold.
CONTROL_CHARS_EXCEPT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: C0, DEL and the C1 controls: display names are shown to every room member, verbatim.
CONTROL_CHARS_C0_C1 = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def is_utf8(text: str) -> bool:
    """False for strings holding lone surrogates (JSON allows ``"\\ud800"``; UTF-8 does not)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def is_utf8_text(value: str) -> bool:
    """Whether ``value`` is text Postgres can store: valid UTF-8 and no NUL."""
    return "\x00" not in value and is_utf8(value)


# --- membership -------------------------------------------------------------------------------


def room_not_found() -> NotFound:
    return NotFound("room not found", code="room_not_found")


def deny_non_member(room: Room) -> ChatflowError:
    """Not a member: a public room says so (403); a private room or DM stays invisible (404)."""
    if room.kind == "public":
        return Forbidden("join the room first", code="not_a_member")
    return room_not_found()
