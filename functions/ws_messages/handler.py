"""Chat actions on the WebSocket: sendMessage, editMessage, deleteMessage, joinRoom, leaveRoom,
typing, markRead, resume (docs/protocol.md).

parse (pydantic frame) -> chatflow.ws.actions -> reply frame. Every invalid frame or refused
action is answered with an error frame and status 200, so the connection stays open; nothing
raises to API Gateway.

The event itself is read as a dict (route key, connection id, authorizer context, body):
Powertools' WebSocket parser models cost ~0.1-0.2 s of imports at cold start here
(docs/performance.md); the test event builders are validated against them instead.
Init primes the adapters (imports, boto3 client object; no network): with SnapStart (catalog)
that work is in the snapshot, without it the first invocation pays the same either way.
"""

from __future__ import annotations

from chatflow.coldstart import pause_gc, resume_gc_after_first_call  # isort: skip

pause_gc()  # before the imports below: init runs without cyclic GC (chatflow.coldstart)

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from chatflow import snapstart
from chatflow.container import Container
from chatflow.domain.identity import Identity
from chatflow.errors import ChatflowError, Unauthorized
from chatflow.settings import get_settings
from chatflow.ws import actions, admission, frames, protocol

logger = Logger()
metrics = Metrics()
container = Container(get_settings())
snapstart.register(container)  # close pools/Redis before the snapshot
container.prime(chat=True)


@resume_gc_after_first_call
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action: str | None = None
    request_id: str | None = None
    identity: Identity | None = None
    cid: str | None = None
    try:
        route = (event.get("requestContext") or {}).get("routeKey")
        action = route if isinstance(route, str) else None
        identity = protocol.identity(event)
        cid = protocol.connection_id(event)
        logger.append_keys(user_id=str(identity.user_id), connection_id=cid, action=action)
        try:
            raw = protocol.body_object(event)
            request_id = protocol.request_id_of(raw)
            frame = frames.parse_frame(raw)
        except ChatflowError:
            container.users.ensure_active(identity)  # a refused account hears that first
            raise
        # Bans close live sockets (DeleteConnection); re-checking here (cached status) also stops
        # a banned user whose socket could not be closed -- in one Redis round trip with the
        # connection's rate limit.
        caller = admission.admit(identity, cid, frame, container)
        reply = actions.dispatch(caller, frame)
        metrics.add_metric(name=f"Action_{frame.action}", unit=MetricUnit.Count, value=1)
        return protocol.reply(reply) if reply is not None else {"statusCode": 200}
    except Unauthorized as exc:
        # A revoked session (ban, delete, log out everywhere) whose socket is still open: it
        # hears why, then it is unregistered and closed (docs/auth.md, "Revocation").
        logger.info("refused: session revoked", extra={"code": exc.code})
        metrics.add_metric(name="FrameRefused", unit=MetricUnit.Count, value=1)
        farewell = protocol.error_frame(exc.code, exc.message, action=action, request_id=request_id)
        if identity is not None and cid is not None:
            container.realtime.end_session(identity.user_id, cid, farewell)
        return protocol.reply(farewell)
    except ChatflowError as exc:
        logger.info("refused", extra={"code": exc.code})
        metrics.add_metric(name="FrameRefused", unit=MetricUnit.Count, value=1)
        if exc.code == "rate_limited":
            metrics.add_metric(name="RateLimited", unit=MetricUnit.Count, value=1)
        if exc.status >= 500:  # Unavailable raised by an adapter: the outage rule adds retryAfterMs
            return protocol.outage_reply(exc, action=action, request_id=request_id) or protocol.error_reply(
                exc, action=action, request_id=request_id
            )
        return protocol.error_reply(exc, action=action, request_id=request_id)
    except Exception as exc:
        outage = protocol.outage_reply(exc, action=action, request_id=request_id)
        if outage is not None:  # Postgres / Redis down or refusing: the client retries later
            logger.warning("dependency unavailable", exc_info=True)
            metrics.add_metric(name="ActionUnavailable", unit=MetricUnit.Count, value=1)
            return outage
        logger.exception("action failed")
        metrics.add_metric(name="ActionFailed", unit=MetricUnit.Count, value=1)
        return protocol.reply(
            protocol.error_frame(
                "internal_error",
                "the server could not process this frame; try again",
                action=action,
                request_id=request_id,
            )
        )
