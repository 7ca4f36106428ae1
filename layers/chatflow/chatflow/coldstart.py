"""Cold start: no cyclic garbage collection while a Lambda execution environment initializes.

What init and the first invocation allocate -- modules, classes, dataclass methods, pydantic
schemas, Powertools' routes, clients -- lives as long as the execution environment, yet the
collector walks it again and again each time the allocation count passes its thresholds (tens of
full collections while ~500 modules load). Measured with ``bench/cold_start.py``: about a sixth
of http_api's on-demand cold start (docs/performance.md).

Every handler module calls :func:`pause_gc` before its other imports and wraps its entry point
with :func:`resume_gc_after_first_call`: after the first invocation everything alive goes to the
permanent generation (``gc.freeze``, so later collections skip it -- shorter pauses on every warm
invocation too) and collection is back on. Outside Lambda (no ``AWS_LAMBDA_FUNCTION_NAME``: tests
importing a handler, tools) nothing changes; the local stack's workers run like Lambda's.
"""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
_paused = False


def pause_gc() -> bool:
    """Disable the cyclic collector in a Lambda execution environment; True when it did."""
    global _paused
    if "AWS_LAMBDA_FUNCTION_NAME" not in os.environ or not gc.isenabled():
        return False
    gc.disable()
    _paused = True
    return True


def resume_gc() -> None:
    """Freeze what is alive (init's objects) and turn collection back on, if :func:`pause_gc`
    turned it off; idempotent."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def resume_gc_after_first_call(handler: Callable[P, R]) -> Callable[P, R]:
    """``handler``, resuming collection when its first call ends (returned or raised)."""
    pending = True

    @functools.wraps(handler)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        nonlocal pending
        try:
            return handler(*args, **kwargs)
        finally:
            if pending:
                pending = False
                resume_gc()

    return wrapper
