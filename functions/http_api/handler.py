"""HTTP API Lambda (payload 2.0): every route of chatflow.http.app.

Cold start: the container, the resolver with its routers and the users/rooms/messages services
are built once per execution environment (init: in the SnapStart snapshot); Postgres/Redis
connections and the route's validation models are made on first use. The event is
never logged whole (Authorization header).
"""

from __future__ import annotations

from chatflow.coldstart import pause_gc, resume_gc_after_first_call  # isort: skip

pause_gc()  # before the imports below: init runs without cyclic GC (chatflow.coldstart)

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow import snapstart
from chatflow.container import Container
from chatflow.http.app import create_app
from chatflow.observability import get_logger, get_metrics, safe_request_fields, traced_handler
from chatflow.settings import get_settings

container = Container(get_settings())
snapstart.register(container)  # close pools/Redis before the snapshot
logger = get_logger()
metrics = get_metrics()
# Where init is paid before any request (SnapStart, provisioned concurrency) every area's routes
# and what nearly every route uses (users: the caller's status; rooms/messages: Postgres and
# Redis adapters) are built now; the realtime service (@connections) stays lazy: few routes use
# it. An on-demand cold start builds only what its first request's area needs.
prepaid = snapstart.init_prepaid()
app = create_app(container, eager=prepaid)
if prepaid:
    container.prime(chat=True, realtime=False)


@resume_gc_after_first_call
@traced_handler
@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = app.resolve(event, context)
    status = int(response.get("statusCode", 500))
    logger.info("request", extra={**safe_request_fields(event), "status": status})
    metrics.add_metric(name="HttpRequests", unit="Count", value=1)
    if status >= 500:
        metrics.add_metric(name="Http5xx", unit="Count", value=1)
    elif status >= 400:
        metrics.add_metric(name="Http4xx", unit="Count", value=1)
    return response
