"""The per-frame checks of ``ws_messages`` in ONE Redis round trip.

Every frame re-checks the account (IDENTITY's ``ensure_active``: a ban must stop a socket that
could not be closed) and rate-limited actions count against the connection's budget. Both are
Redis reads of independent keys, so they go out in one pipeline: the user's cached status is
read next to the rate-limit script and handed to ``ensure_active(identity, cached=...)`` (a
cache miss falls back to its normal read-through). The ban check still decides first: a banned
user hears ``unauthorized``, not ``rate_limited``.
"""

from __future__ import annotations

from typing import Any

from chatflow.domain.identity import Identity
from chatflow.domain.realtime import RateKind, RealtimeService
from chatflow.ws import frames
from chatflow.ws.actions import Caller

#: Which frames count against which per-connection budget (docs/protocol.md, Limits).
RATE_KINDS: dict[type[Any], RateKind] = {
    frames.SendMessage: "messages",
    frames.EditMessage: "messages",
    frames.DeleteMessage: "messages",
    frames.Typing: "typing",
    # Each reads or writes Postgres: a looping client must not hammer the database. Not ping
    # (Redis only; it normally routes to ws_ping).
    frames.JoinRoom: "requests",
    frames.LeaveRoom: "requests",
    frames.MarkRead: "requests",
    frames.Resume: "requests",
}


def admit(
    identity: Identity, connection_id: str, frame: frames.ClientFrame, service: RealtimeService
) -> Caller:
    """Ban re-check and (for rate-limited actions) the rate limit; the caller for the action."""
    from chatflow.adapters.redis_user_status import decode_status, status_key
    from chatflow.domain.users import ensure_active

    kind = RATE_KINDS.get(type(frame))
    if kind is None:
        return Caller(ensure_active(identity), connection_id, service)
    decision = service.rate_decision(kind, connection_id, also_read=status_key(identity.user_id))
    checked = ensure_active(identity, cached=decode_status(decision.read))
    service.raise_if_limited(kind, decision)
    return Caller(checked, connection_id, service, rate_checked=True)
