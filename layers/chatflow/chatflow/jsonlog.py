"""JSON log lines in the shape of Powertools' Logger, without importing Powertools.

For the one function whose cold-start budget cannot pay Powertools' package import (~13% of
the authorizer's instructions, ``bench/cold_start.py --instructions``): the authorizer runs on
every WebSocket ``$connect`` and every uncached HTTP authorization. Every other function logs
through Powertools (:func:`chatflow.observability.get_logger`). The keys are Powertools' --
``level``, ``location``, ``message``, ``timestamp``, ``service``, ``correlation_id``,
``xray_trace_id``, the ``extra`` fields, ``exception``/``exception_name`` -- so one Logs
Insights query reads both (tests/unit/test_jsonlog.py compares the two line by line).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

#: What every LogRecord has; anything else on a record came from ``extra``.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _level_from_env() -> str:
    # Powertools' order: its own variable, then Lambda's advanced logging control, then INFO.
    for name in ("POWERTOOLS_LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL", "LOG_LEVEL"):
        value = os.environ.get(name, "").upper()
        if value in logging.getLevelNamesMapping():
            return value
    return "INFO"


class _StdoutHandler(logging.Handler):
    """Writes to the current ``sys.stdout`` (Lambda ships stdout lines to CloudWatch Logs)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self.correlation_id: str | None = None

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": self._timestamp(record),
            "service": self.service,
        }
        if self.correlation_id is not None:
            entry["correlation_id"] = self.correlation_id
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS})
        kind, value, tb = record.exc_info or (None, None, None)
        if kind is not None:
            entry["exception"] = self.formatException((kind, value, tb))  # type: ignore[arg-type]
            entry["exception_name"] = kind.__name__
            entry["stack_trace"] = {
                "type": kind.__name__,
                "value": str(value),
                "module": kind.__module__,
                "frames": [
                    {"file": f.filename, "line": f.lineno, "function": f.name, "statement": f.line or ""}
                    for f in traceback.extract_tb(tb)
                ],
            }
        trace = os.environ.get("_X_AMZN_TRACE_ID", "")
        root = next((p[5:] for p in trace.split(";") if p.startswith("Root=")), None)
        if root:
            entry["xray_trace_id"] = root
        return json.dumps(entry, default=str, separators=(",", ":"))

    @staticmethod
    def _timestamp(record: logging.LogRecord) -> str:
        # Powertools' default: "2026-12-03 16:57:19,123+0000" (UTC here: Lambda's TZ).
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.created))
        return f"{stamp},{int(record.msecs):03d}+0000"


class JsonLogger:
    """The part of Powertools' Logger API the authorizer uses."""

    def __init__(self, service: str) -> None:
        self._logger = logging.getLogger(f"{service}.jsonlog")
        self._formatter = JsonFormatter(service)
        handler = _StdoutHandler()
        handler.setFormatter(self._formatter)
        self._logger.handlers[:] = [handler]
        self._logger.setLevel(_level_from_env())
        # Like Powertools: not also through the root logger (Lambda's runtime prints that plain).
        self._logger.propagate = False

    def set_correlation_id(self, value: str | None) -> None:
        self._formatter.correlation_id = value

    def info(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.info(msg, extra=extra, stacklevel=2)

    def warning(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.warning(msg, extra=extra, stacklevel=2)

    def error(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.error(msg, extra=extra, stacklevel=2)

    def exception(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.exception(msg, extra=extra, stacklevel=2)
