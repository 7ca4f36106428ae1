"""The per-frame checks of ``ws_messages`` in ONE Redis round trip.

Every frame re-checks the account (IDENTITY's ``ensure_active``: a ban must stop a socket that
could not be closed) and rate-limited actions count against the connection's budget. Both are
Redis reads of independent keys, so they go out in one pipeline: the realtime registry reads the
user's cached status next to the rate-limit script (``with_status_of``; the key format stays in
the Redis adapters) and it is handed to ``ensure_active(identity, cached=...)`` (a cache miss
falls back to its normal read-through). The same round trip tells whether the connection is still
registered: a connection the registry forgot (its record expired, or Redis lost its data) is
registered again from this frame's identity and told to ``resync``. The ban check still decides
first: a banned user hears ``unauthorized``, not ``rate_limited``.
"""

from __future__ import annotations

from typing import Any

from chatflow.domain.identity import Identity
from chatflow.domain.realtime_models import RateKind
from chatflow.ws import frames
from chatflow.ws.actions import Caller, WsServices

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
    frames.Presence: "requests",
}


def admit(identity: Identity, connection_id: str, frame: frames.ClientFrame, services: WsServices) -> Caller:
    """Ban re-check and (for rate-limited actions) the rate limit; the caller for the action."""
    users, realtime = services.users, services.realtime
    kind = RATE_KINDS.get(type(frame))
    if kind is None:
        return Caller(users.ensure_active(identity), connection_id, services)
    decision = realtime.rate_decision(kind, connection_id, with_status_of=identity.user_id)
    checked = users.ensure_active(identity, cached=decision.status)
    if decision.registered is False:
        # The registry forgot this open connection (expired, or Redis lost its data): it is live
        # again from this frame on, and told to resync (docs/protocol.md, "Registry loss").
        realtime.rejoin(checked, connection_id, recheck=lambda: users.ensure_active(identity))
    realtime.raise_if_limited(kind, decision)
    return Caller(checked, connection_id, services, rate_checked=True)
