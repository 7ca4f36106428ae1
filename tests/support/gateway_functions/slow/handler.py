"""Test route: sleeps past its 1 s timeout unless asked for a short nap."""

from __future__ import annotations

import json
import os
import time
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    nap = float(json.loads(event["body"]).get("sleep", 5))
    time.sleep(nap)
    return {"statusCode": 200, "body": json.dumps({"slept": nap, "pid": os.getpid()})}
