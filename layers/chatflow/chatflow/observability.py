"""Powertools Logger / Metrics for handlers, and X-Ray subsegments, created once per container.

Tracing: with Lambda's active tracing, Lambda records each invocation's segment itself; the
handlers add a ``## handler`` subsegment (annotations ``ColdStart`` and ``Service``, the
exception as its fault cause) and one subsegment per AWS call of the lean clients
(``chatflow/adapters/aws_http.py``), sent to the X-Ray daemon over UDP by :class:`XRayTracer`
-- the documents Powertools' ``Tracer.capture_lambda_handler`` and the X-Ray SDK's botocore patch
sent. Not the X-Ray SDK itself: importing it costs ~0.45x of a whole naive cold start here
(``wrapt`` with asyncio and importlib.metadata, and botocore for its sampler, which Lambda never
uses), the functions no longer call AWS through botocore on their request paths, and the SDK is
in maintenance mode since 2026-02-25 (AWS recommends OpenTelemetry). ``POWERTOOLS_TRACE_DISABLED``
still turns tracing off. Metrics (EMF to stdout) cost almost nothing. The Logger is JSON;
handlers set the correlation id from ``requestContext.requestId``. Never log events whole (they
carry ``Authorization`` headers and ``?token=`` query strings): :func:`safe_request_fields` gives
the loggable subset.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools import Logger

from chatflow.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

F = TypeVar("F", bound=Callable[..., Any])


@functools.lru_cache(maxsize=1)
def get_logger() -> Logger:
    return Logger(service=get_settings().service_name)


@functools.lru_cache(maxsize=1)
def get_metrics() -> Metrics:
    from aws_lambda_powertools import Metrics

    settings = get_settings()
    return Metrics(namespace=settings.powertools_metrics_namespace, service=settings.service_name)


@functools.lru_cache(maxsize=1)
def get_tracer() -> XRayTracer | None:
    """The container's tracer, or None when tracing is disabled (``POWERTOOLS_TRACE_DISABLED``)."""
    if get_settings().powertools_trace_disabled:
        return None
    return XRayTracer(service=get_settings().service_name)


def traced_handler(handler: F) -> F:
    """Apply :meth:`XRayTracer.capture_lambda_handler` when tracing is on; else the handler."""
    tracer = get_tracer()
    if tracer is None:
        return handler
    return tracer.capture_lambda_handler(handler)


# --- X-Ray ----------------------------------------------------------------------------------------

_HEADER = b'{"format":"json","version":1}\n'
#: A UDP datagram to the daemon must stay below 64 KB: long stacks are cut.
_MAX_STACK = 40


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """``_X_AMZN_TRACE_ID`` as Lambda sets it per invocation: ``Root=...;Parent=...;Sampled=1``."""

    root: str
    parent: str | None
    sampled: bool

    @classmethod
    def parse(cls, value: str | None) -> TraceHeader | None:
        fields = dict(part.strip().partition("=")[::2] for part in (value or "").split(";") if "=" in part)
        root = fields.get("Root")
        if not root:
            return None
        return cls(root, fields.get("Parent") or None, fields.get("Sampled") == "1")


def daemon_address(value: str | None) -> tuple[str, int]:
    """``AWS_XRAY_DAEMON_ADDRESS``: ``host:port`` or ``tcp:host:port udp:host:port`` (UDP used)."""
    chosen = "127.0.0.1:2000"
    for part in (value or "").split():
        kind, _, rest = part.partition(":")
        if kind == "udp":
            chosen = rest
            break
        if kind not in ("tcp", "udp"):
            chosen = part
    host, _, port = chosen.rpartition(":")
    return host or "127.0.0.1", int(port)


def _cause(exc: BaseException) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)[-_MAX_STACK:]
    return {
        "working_directory": os.getcwd(),
        "exceptions": [
            {
                "id": secrets.token_hex(8),
                "message": str(exc),
                "type": type(exc).__name__,
                "remote": False,
                "stack": [{"path": f.filename, "line": f.lineno, "label": f.name} for f in reversed(frames)],
            }
        ],
    }


class XRayTracer:
    """Sends subsegments of the invocation's segment to the X-Ray daemon (UDP, one JSON document
    per datagram), only for sampled invocations. Thread-safe: the current parent is per thread."""

    def __init__(
        self, service: str, address: str | None = None, environ: Mapping[str, str] = os.environ
    ) -> None:
        self.service = service
        self._environ = environ
        self._address = daemon_address(address or environ.get("AWS_XRAY_DAEMON_ADDRESS"))
        self._sock: socket.socket | None = None
        self._local = threading.local()
        self._cold = True

    def capture_lambda_handler(self, handler: F) -> F:
        name = f"## {handler.__name__}"

        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> Any:
            cold, self._cold = self._cold, False
            header = TraceHeader.parse(self._environ.get("_X_AMZN_TRACE_ID"))
            if header is None or not header.sampled:
                return handler(event, context)
            annotations = {"ColdStart": cold, "Service": self.service}
            with self.subsegment(name, header=header, annotations=annotations):
                return handler(event, context)

        return cast(F, wrapper)

    @contextlib.contextmanager
    def subsegment(
        self,
        name: str,
        *,
        header: TraceHeader | None = None,
        namespace: str | None = None,
        annotations: Mapping[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """A subsegment around the block; nested ones hang under it. Without a sampled invocation
        (outside a traced handler) nothing is recorded. ``extra`` fields (``aws``, ``http``) may be
        filled in by the block through the yielded document."""
        parent: tuple[TraceHeader, str | None] | None = getattr(self._local, "parent", None)
        if header is not None:
            trace, parent_id = header, header.parent
        elif parent is not None:
            trace, parent_id = parent
        else:
            yield {}
            return
        doc: dict[str, Any] = {
            "name": name,
            "id": secrets.token_hex(8),
            "trace_id": trace.root,
            "parent_id": parent_id,
            "type": "subsegment",
            "start_time": time.time(),
            **(extra or {}),
        }
        if namespace:
            doc["namespace"] = namespace
        if annotations:
            doc["annotations"] = dict(annotations)
        self._local.parent = (trace, doc["id"])
        try:
            yield doc
        except BaseException as exc:
            if not doc.get("error"):  # a client error (4xx) the block marked itself is no fault
                doc["fault"] = True
            doc["cause"] = _cause(exc)
            raise
        finally:
            self._local.parent = parent
            doc["end_time"] = time.time()
            self._send(doc)

    def _send(self, doc: dict[str, Any]) -> None:
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.sendto(_HEADER + json.dumps(doc, default=str).encode(), self._address)
        except OSError:
            logging.getLogger(__name__).debug("X-Ray daemon unreachable at %s", self._address)


def safe_request_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an API Gateway event that may be logged: no secrets, no bodies, no tokens."""
    ctx = event.get("requestContext") or {}
    http = ctx.get("http") or {}
    return {
        "route": event.get("routeKey") or ctx.get("routeKey"),
        "method": http.get("method"),
        "path": event.get("rawPath"),
        "source_ip": http.get("sourceIp") or (ctx.get("identity") or {}).get("sourceIp"),
        "request_id": ctx.get("requestId"),
    }
