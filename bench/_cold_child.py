"""One cold start, measured from inside a fresh interpreter (child of bench/cold_start.py).

    python bench/_cold_child.py <spec.json>

Only the standard library is imported before the clock starts (as Lambda's runtime only has
its own bootstrap loaded when it imports the handler). The spec names either a handler
(``module_path``, ``handler_attr``, ``code_dir``, ``event``, ``expect``) or ``"baseline"``.
Measured: the handler module's import (by file path, the way Lambda loads ``handler.handler``)
plus its first invocation, the heavy modules present afterwards, and the peak RSS.
The result is written as JSON to ``result_path`` (stdout belongs to the handler's logs).
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import sys
import time
from typing import Any


class LambdaContext:
    """The attributes of the Lambda runtime's context object that Powertools and handlers read."""

    def __init__(self, function_name: str, memory_mb: int, request_id: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = request_id
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/11/25/[$LATEST]bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def baseline(endpoint_url: str) -> None:
    """The reference cold start (docs/performance.md): the usual imports and two boto3 clients."""
    import boto3
    import jwt  # noqa: F401
    import psycopg  # noqa: F401
    import pydantic  # noqa: F401
    import redis  # noqa: F401
    from aws_lambda_powertools import Logger, Metrics, Tracer  # noqa: F401
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver  # noqa: F401

    boto3.client("events")
    boto3.client("apigatewaymanagementapi", endpoint_url=endpoint_url)


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: after a vfork/exec from a big
    parent, Linux reports the parent's high-water mark there."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _check(result: Any, expect: dict[str, Any]) -> str | None:
    """None when the first invocation answered as expected, else why not."""
    if not isinstance(result, dict):
        return f"handler returned {type(result).__name__}, expected a dict"
    for key, want in (expect.get("equals") or {}).items():
        if result.get(key) != want:
            return f"result[{key!r}] = {result.get(key)!r}, expected {want!r}"
    for key, minimum in (expect.get("at_least") or {}).items():
        value = result.get(key)
        if not isinstance(value, int | float) or value < minimum:
            return f"result[{key!r}] = {value!r}, expected >= {minimum!r}"
    needle = expect.get("body_contains")
    if needle is not None and needle not in str(result.get("body", "")):
        return f"body {str(result.get('body'))[:200]!r} lacks {needle!r}"
    return None


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as fh:
        spec: dict[str, Any] = json.load(fh)
    # Lambda puts the function's code directory first on sys.path (never this bench/ directory).
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]
    if spec.get("code_dir"):
        sys.path.insert(0, spec["code_dir"])
    event = spec.get("event")
    before = set(sys.modules)
    error: str | None = None

    profiler = None
    if spec.get("profile_path"):
        import cProfile  # diagnostics only (bench/cold_start.py --profile): not a timed run

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    cpu_started = time.process_time()
    if spec["target"] == "baseline":
        baseline(spec["management_endpoint"])
        imported = invoked = time.perf_counter()
    elif spec["target"] == "null":  # the interpreter and this script alone (instruction counts)
        imported = invoked = time.perf_counter()
    else:
        module_spec = importlib.util.spec_from_file_location("handler", spec["module_path"])
        assert module_spec is not None
        assert module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules["handler"] = module
        module_spec.loader.exec_module(module)
        imported = time.perf_counter()
        context = LambdaContext(spec["function_name"], spec["memory_mb"], spec["request_id"])
        result = getattr(module, spec["handler_attr"])(event, context)
        invoked = time.perf_counter()
        error = _check(result, spec.get("expect") or {})
    cpu = time.process_time() - cpu_started

    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(spec["profile_path"])
    loaded = set(sys.modules)
    report = {
        "import_s": imported - started,
        "invoke_s": invoked - imported,
        "total_s": invoked - started,
        # CPU seconds of this process (all threads) in the same window: robust against other
        # load on the machine, blind to waiting on Postgres/Redis/loopback servers.
        "cpu_s": cpu,
        "peak_rss_mb": _peak_rss_mb(),
        "modules_loaded": len(loaded - before),
        "heavy": sorted(name for name in spec.get("watch", []) if name in loaded),
        "error": error,
    }
    with open(spec["result_path"], "w", encoding="utf-8") as fh:
        json.dump(report, fh)
    if spec.get("exit_at_once"):
        # Instruction counts: no interpreter teardown (Lambda freezes an environment, it does
        # not tear it down), so that the count past the window is the same for every target.
        sys.stdout.flush()
        os._exit(0 if error is None else 1)
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
