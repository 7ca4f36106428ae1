"""$default: frames that are not JSON or name no known action get an error frame naming the
valid actions; the connection stays open (status 200 + route response).

Cold start: no boto3, psycopg, redis or pydantic -- the event is read as a plain dict (the
Powertools parser models would add ~0.12 s of imports here; docs/performance.md).
"""

from __future__ import annotations

from chatflow.coldstart import pause_gc, resume_gc_after_first_call  # isort: skip

pause_gc()  # before the imports below: init runs without cyclic GC (chatflow.coldstart)

from typing import Any

from aws_lambda_powertools import Logger

from chatflow.errors import ChatflowError
from chatflow.ws import protocol

logger = Logger()


@resume_gc_after_first_call
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        frame = protocol.body_object(event)
    except ChatflowError as exc:
        logger.info("invalid frame", extra={"code": exc.code})
        return protocol.error_reply(exc)
    logger.info("unknown action", extra={"action": protocol.client_text(frame.get("action"))})
    return protocol.unknown_action_reply(frame)
