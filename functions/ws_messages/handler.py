"""Chat actions on the WebSocket: sendMessage, editMessage, deleteMessage, joinRoom, leaveRoom,
typing, markRead, resume (docs/protocol.md).

parse (Powertools WebSocket event model + pydantic frame) -> chatflow.ws.actions -> reply frame.
Every invalid frame or refused action is answered with an error frame and status 200, so the
connection stays open; nothing raises to API Gateway.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import APIGatewayWebSocketMessageEventModel
from pydantic import ValidationError

from chatflow.domain.users import ensure_active
from chatflow.errors import ChatflowError
from chatflow.ws import actions, frames, protocol
from chatflow.ws.wiring import realtime

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action: str | None = None
    request_id: str | None = None
    try:
        try:
            parsed = parse(event=event, model=APIGatewayWebSocketMessageEventModel)
        except ValidationError:
            return protocol.reply(protocol.error_frame("bad_event", "malformed WebSocket event"))
        action = parsed.request_context.route_key
        # Bans close live sockets (DeleteConnection); re-checking here (cached status, one Redis
        # read) also stops a banned user whose socket could not be closed.
        identity = ensure_active(protocol.identity(event))
        cid = parsed.request_context.connection_id
        logger.append_keys(user_id=str(identity.user_id), connection_id=cid, action=action)
        raw = protocol.body_object(event)
        request_id = protocol.request_id_of(raw)
        frame = frames.parse_frame(raw)
        reply = actions.dispatch(actions.Caller(identity, cid, realtime()), frame)
        metrics.add_metric(name=f"Action_{frame.action}", unit=MetricUnit.Count, value=1)
        return protocol.reply(reply) if reply is not None else {"statusCode": 200}
    except ChatflowError as exc:
        logger.info("refused", extra={"code": exc.code})
        if exc.code == "rate_limited":
            metrics.add_metric(name="RateLimited", unit=MetricUnit.Count, value=1)
        return protocol.error_reply(exc, action=action, request_id=request_id)
    except Exception:
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
