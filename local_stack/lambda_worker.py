"""One Lambda execution environment: a process that imports one handler once and serves invokes.

Started by :mod:`local_stack.lambda_runtime` as ``python -m local_stack.lambda_worker CODE_DIR
MODULE ATTR`` with the function's own environment. Like Lambda's Python runtime it puts the code
directory first on ``sys.path`` and imports the handler module by name (the cold start), then
calls ``handler(event, context)`` for each invoke.

Protocol: length-prefixed JSON frames; requests on stdin, answers on the process's original
stdout. The handler's own ``print``/logging output goes to stderr (the gateway prefixes and shows
it, as CloudWatch Logs would).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

_HEADER = struct.Struct(">I")


def read_frame(stream: BinaryIO) -> Any | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    return json.loads(stream.read(size))


def write_frame(stream: BinaryIO, message: Any) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


class LambdaContext:
    """The attributes and method of Lambda's Python context object that handlers use."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:000000000000:function:{self.function_name}"
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "ok": False,
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def main(argv: list[str]) -> int:
    code_dir, module_name, attr = argv
    # Ctrl-C in the terminal reaches the whole process group; the gateway, not the user's SIGINT,
    # ends a sandbox (after delivering $disconnect), as Lambda's sandboxes never see that signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep the protocol channel; point fd 1 (and sys.stdout) at stderr for the handler's output.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer

    sys.path.insert(0, code_dir)
    started = time.perf_counter()
    handler: Callable[[Any, Any], Any] | None = None
    init_error: dict[str, Any] | None = None
    try:
        handler = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # reported on every invoke, as Lambda's Runtime.ImportModuleError
        traceback.print_exc()
        init_error = _error(exc, "Runtime.ImportModuleError")
    write_frame(channel, {"ready": True, "init_ms": round((time.perf_counter() - started) * 1000, 2)})

    while (request := read_frame(requests)) is not None:
        if init_error is not None or handler is None:
            write_frame(channel, init_error)
            continue
        context = LambdaContext(request["request_id"], int(request["deadline_ms"]))
        started = time.perf_counter()
        try:
            result = handler(request["event"], context)
            answer = {"ok": True, "result": result, "handler_ms": (time.perf_counter() - started) * 1000}
            try:
                write_frame(channel, answer)
            except (TypeError, ValueError) as exc:  # not JSON-serializable
                traceback.print_exc()
                write_frame(channel, _error(exc, "Runtime.MarshalError"))
        except Exception as exc:  # the handler raised: Lambda logs it and returns an error
            sys.stderr.write(
                json.dumps(
                    {
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                        "requestId": request["request_id"],
                    }
                )
                + "\n"
            )
            traceback.print_exc()
            write_frame(channel, _error(exc))
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
