"""ping: refresh this connection's registry and presence TTLs (Redis only), answer ``pong``.

Cold start: redis + this module only (no boto3, psycopg or pydantic). A connection whose record
expired during a long silence is registered again when the per-user limit allows.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from chatflow.container import Container
from chatflow.errors import ChatflowError
from chatflow.settings import get_settings
from chatflow.ws import protocol

logger = Logger()
container = Container(get_settings())


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id: str | None = None
    try:
        identity = protocol.identity(event)
        cid = protocol.connection_id(event)
        request_id = protocol.request_id_of(protocol.body_object(event))
        registry = container.connection_registry
        alive = registry.touch(identity.user_id, cid)
        if not alive:
            # The record expired (no ping for presence_ttl_s) while the socket stayed open.
            limit = container.settings.max_connections_per_user
            alive = registry.register(identity.user_id, cid, limit=limit).accepted
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
    except ChatflowError as exc:
        return protocol.error_reply(exc, action="ping", request_id=request_id)
    except Exception:
        logger.exception("ping failed")
        return protocol.reply(
            protocol.error_frame("internal_error", "try again", action="ping", request_id=request_id)
        )
