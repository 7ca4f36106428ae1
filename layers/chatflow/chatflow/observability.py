"""Powertools Logger / Metrics / Tracer for handlers, created once per container and lazily.

Why lazy: ``Tracer()`` imports aws_xray_sdk (~0.3 s here) even when disabled, so it is only
created when tracing is on (``POWERTOOLS_TRACE_DISABLED`` unset/false -- in Lambda with active
tracing). Lambda's active tracing records the invocation segment either way. Metrics (EMF to
stdout) cost almost nothing. The Logger is JSON; handlers set the correlation id from
``requestContext.requestId``. Never log events whole (they carry ``Authorization`` headers and
``?token=`` query strings): :func:`safe_request_fields` gives the loggable subset.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools import Logger

from chatflow.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics, Tracer

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
def get_tracer() -> Tracer | None:
    """The container's Tracer, or None when tracing is disabled (then aws_xray_sdk is never imported)."""
    if get_settings().powertools_trace_disabled:
        return None
    from aws_lambda_powertools import Tracer

    # Patch only botocore (AWS calls as subsegments): the default patches every supported library,
    # importing ``requests`` and others the functions never use.
    return Tracer(service=get_settings().service_name, patch_modules=["botocore"])


def traced_handler(handler: F) -> F:
    """Apply ``Tracer.capture_lambda_handler`` when tracing is on; the handler unchanged otherwise."""
    tracer = get_tracer()
    if tracer is None:
        return handler
    return cast(F, tracer.capture_lambda_handler(handler, capture_response=False))


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
