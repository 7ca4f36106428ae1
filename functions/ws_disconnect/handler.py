"""$disconnect (best effort: API Gateway may never send it -- registry entries also expire):
unregister the connection; after the user's LAST connection, presence "offline" to co-members.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import APIGatewayWebSocketDisconnectEventModel
from pydantic import ValidationError

from chatflow.errors import ChatflowError
from chatflow.ws import protocol
from chatflow.ws.wiring import realtime

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        parsed = parse(event=event, model=APIGatewayWebSocketDisconnectEventModel)
        identity = protocol.identity(event)
    except (ValidationError, ChatflowError):
        logger.warning("malformed $disconnect event")
        return {"statusCode": 400}
    ctx = parsed.request_context
    logger.append_keys(user_id=str(identity.user_id), connection_id=ctx.connection_id)
    result = realtime().disconnect(identity.user_id, ctx.connection_id)
    logger.info(
        "disconnected",
        extra={"status": ctx.disconnect_status_code, "reason": ctx.disconnect_reason, "last": result.last},
    )
    metrics.add_metric(name="Disconnected", unit=MetricUnit.Count, value=1)
    return {"statusCode": 200}
