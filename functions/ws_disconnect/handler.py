"""$disconnect (best effort: API Gateway may never send it -- registry entries also expire):
unregister the connection; after the user's LAST connection, presence "offline" to co-members.

Read as a dict like $connect (no Powertools parser models: cold start, docs/performance.md).
"""

from __future__ import annotations

from chatflow.coldstart import pause_gc, resume_gc_after_first_call  # isort: skip

pause_gc()  # before the imports below: init runs without cyclic GC (chatflow.coldstart)

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from chatflow import snapstart
from chatflow.container import Container
from chatflow.errors import ChatflowError, dependency_outage
from chatflow.settings import get_settings
from chatflow.ws import protocol

logger = Logger()
metrics = Metrics()
container = Container(get_settings())
snapstart.register(container)  # close pools/Redis before the snapshot
# Imports and object graphs at init (no network): inside the SnapStart snapshot.
container.prime(chat=False)


@resume_gc_after_first_call
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        cid = protocol.connection_id(event)
        identity = protocol.identity(event)
    except ChatflowError:
        logger.warning("malformed $disconnect event")
        return {"statusCode": 400}
    ctx = event["requestContext"]
    logger.append_keys(user_id=str(identity.user_id), connection_id=cid)
    try:
        result = container.realtime.disconnect(identity.user_id, cid)
    except Exception as exc:
        if dependency_outage(exc) is None:
            raise
        # Redis down: the connection's record expires on its own (PRESENCE_TTL_S); API Gateway
        # ignores this answer, the log and the metric are for operators.
        logger.warning("disconnect not recorded: dependency unavailable", exc_info=True)
        metrics.add_metric(name="DisconnectFailed", unit=MetricUnit.Count, value=1)
        return {"statusCode": 503}
    logger.info(
        "disconnected",
        extra={
            "status": ctx.get("disconnectStatusCode"),
            "reason": ctx.get("disconnectReason"),
            "last": result.last,
        },
    )
    metrics.add_metric(name="Disconnected", unit=MetricUnit.Count, value=1)
    return {"statusCode": 200}
