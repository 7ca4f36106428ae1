"""$connect: the ``ws-jwt`` authorizer verified the token (its result may be cached for
minutes), so bans are re-checked here (IDENTITY's ensure_active); then the per-user connection
limit (atomic in Redis), registration (stamped with the token's ``iat``), the account re-checked
after registering (a ban that raced this handshake undoes it), and -- on the user's first
connection -- presence "online" to co-members. A refused handshake returns 403 (not allowed) or
429 (limit); an accepted one echoes ``Sec-WebSocket-Protocol: chatflow.v1`` when the client
offered it (docs/auth.md).

The event is read as a dict (connection id + authorizer context): Powertools' parser models
cost ~0.1-0.2 s of imports at cold start here, for two fields (docs/performance.md). The test
event builders are checked against APIGatewayWebSocketConnectEventModel instead.
"""

from __future__ import annotations

from chatflow.coldstart import pause_gc, resume_gc_after_first_call  # isort: skip

pause_gc()  # before the imports below: init runs without cyclic GC (chatflow.coldstart)

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from chatflow import snapstart
from chatflow.apigw import header
from chatflow.container import Container
from chatflow.errors import ChatflowError, LimitExceeded, RateLimited, dependency_outage
from chatflow.settings import get_settings
from chatflow.ws import protocol

logger = Logger()
metrics = Metrics()
container = Container(get_settings())
snapstart.register(container)  # close pools/Redis before the snapshot
# Imports and object graphs at init (no network): inside the SnapStart snapshot. Not ROOMS'
# messages service: it would import psycopg, which a handshake with a warm users cache never
# needs (0.91x -> ~0.5x of the baseline without SnapStart, docs/performance.md).
container.prime(chat=False)
_ = container.users


def _refuse(status: int, code: str) -> dict[str, Any]:
    # The handshake is refused with this HTTP status; the body is not shown to browsers.
    return {"statusCode": status, "body": protocol.dumps({"code": code})}


@resume_gc_after_first_call
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        cid = protocol.connection_id(event)
    except ChatflowError:
        logger.warning("malformed $connect event")
        return _refuse(400, "bad_event")
    try:
        identity = protocol.identity(event)
        logger.append_keys(user_id=str(identity.user_id), connection_id=cid)
        users = container.users
        users.ensure_active(identity)
        # Re-checked AFTER registering: a revocation landing between the check above and the
        # registration is seen here (the registration is undone) or removes it itself.
        registration = container.realtime.connect(
            identity, cid, recheck=lambda: users.ensure_active(identity)
        )
    except (LimitExceeded, RateLimited) as exc:  # connection limit, per-user handshake rate
        logger.info("connection refused", extra={"code": exc.code})
        metrics.add_metric(name="ConnectRefusedLimit", unit=MetricUnit.Count, value=1)
        return _refuse(429, exc.code)
    except ChatflowError as exc:
        if exc.status >= 500:  # a dependency is down: not the client's fault, it may retry
            logger.warning("connection refused: dependency unavailable", extra={"code": exc.code})
            metrics.add_metric(name="ConnectFailed", unit=MetricUnit.Count, value=1)
            return _refuse(503, exc.code)
        logger.info("connection refused", extra={"code": exc.code})
        metrics.add_metric(name="ConnectRefusedAuth", unit=MetricUnit.Count, value=1)
        return _refuse(403, exc.code)
    except Exception as exc:
        outage = dependency_outage(exc)  # the rule the HTTP app and the frames use too
        if outage is None:
            logger.exception("connect failed")
            metrics.add_metric(name="ConnectError", unit=MetricUnit.Count, value=1)
            return _refuse(500, "internal_error")
        logger.warning("connection refused: dependency unavailable", exc_info=True)
        metrics.add_metric(name="ConnectFailed", unit=MetricUnit.Count, value=1)
        return _refuse(503, outage.code)
    logger.info("connected", extra={"connections": registration.count, "first": registration.first})
    metrics.add_metric(name="Connected", unit=MetricUnit.Count, value=1)
    # A browser that offered subprotocols (chatflow.v1 + its token) needs one of them echoed.
    headers = protocol.subprotocol_response_headers(header(event, "sec-websocket-protocol"))
    return {"statusCode": 200, "headers": headers} if headers else {"statusCode": 200}
