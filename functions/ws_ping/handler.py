"""ping: check the account (cached status), refresh this connection's registry and presence TTLs
(Redis only), answer ``pong``.

Cold start: redis + this module only (no boto3, psycopg or pydantic): the account check reads
IDENTITY's status cache (Postgres only on a miss). A revoked session (ban, delete, log out
everywhere) is never touched or re-registered: it hears ``account_disabled`` / ``token_revoked``
and is closed (DeleteConnection; botocore is loaded on that path only). A connection whose record
expired during a long silence is registered again when the per-user limit allows, and the
account is re-checked after that registration (docs/auth.md, "Revocation").
"""

from __future__ import annotations

from chatflow.coldstart import pause_gc, resume_gc_after_first_call  # isort: skip

pause_gc()  # before the imports below: init runs without cyclic GC (chatflow.coldstart)

import time
from typing import Any

from aws_lambda_powertools import Logger

from chatflow.container import Container
from chatflow.errors import ChatflowError, Unauthorized
from chatflow.settings import get_settings
from chatflow.ws import protocol

logger = Logger()
container = Container(get_settings())


@resume_gc_after_first_call
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id: str | None = None
    try:
        identity = protocol.identity(event)
        cid = protocol.connection_id(event)
        request_id = protocol.request_id_of(protocol.body_object(event))
        users = container.users
        try:
            users.ensure_active(identity)
        except Unauthorized as exc:  # a revoked session: unregister and close it
            farewell = protocol.error_frame(exc.code, exc.message, action="ping", request_id=request_id)
            container.realtime.end_session(identity.user_id, cid, farewell)
            raise
        alive = container.realtime.keep_alive(identity, cid, recheck=lambda: users.ensure_active(identity))
        frame: dict[str, Any] = {"type": "pong", "serverTime": int(time.time() * 1000)}
        if not alive:
            frame = protocol.error_frame(
                "too_many_connections",
                "this connection expired and the user has the maximum of live connections",
                action="ping",
                request_id=request_id,
            )
        elif request_id:
            frame["requestId"] = request_id
        return protocol.reply(frame)
    except Exception as exc:
        outage = protocol.outage_reply(exc, action="ping", request_id=request_id)
        if outage is not None:  # Redis down or refusing writes (the rule shared with HTTP)
            logger.warning("dependency unavailable", exc_info=True)
            return outage
        if isinstance(exc, ChatflowError):
            return protocol.error_reply(exc, action="ping", request_id=request_id)
        logger.exception("ping failed")
        return protocol.reply(
            protocol.error_frame("internal_error", "try again", action="ping", request_id=request_id)
        )
