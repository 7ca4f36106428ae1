"""Test target: logs every invocation to ``$INVOCATION_LOG`` (one JSON line: function, event id,
payload) and does what the payload asks -- ``{"mode": "fail"}`` raises, ``{"mode": "sleep",
"seconds": s}`` sleeps, anything else succeeds. For an EventBridge event the ask is its detail.
A file ``$INVOCATION_LOG.fail`` makes every invocation fail (for events whose detail must stay a
valid chatflow event, so the redrive tool takes them back). ``single/handler.py`` and
``brief/handler.py`` link here (the same code with a reserved concurrency of 1)."""

from __future__ import annotations

import json
import os
import time
from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    ask = event.get("detail", event) if isinstance(event, dict) else {}
    ask = ask if isinstance(ask, dict) else {}
    line = {
        "function": context.function_name,
        "eventId": event.get("id") if isinstance(event, dict) else None,
        "payload": event,
        "at": time.time(),
    }
    with open(os.environ["INVOCATION_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")
    if ask.get("mode") == "fail" or os.path.exists(os.environ["INVOCATION_LOG"] + ".fail"):
        raise RuntimeError("worker failed on purpose")
    if ask.get("mode") == "sleep":
        time.sleep(float(ask.get("seconds", 1)))
    return {"ok": True, "function": context.function_name}
