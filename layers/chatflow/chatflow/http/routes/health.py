"""GET /health/live (no I/O) and GET /health/ready (Postgres and Redis, each with its latency)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.http.schemas import LiveOut, ReadyOut, documented
from chatflow.http.services import HttpServices
from chatflow.observability import get_logger


def _timed(name: str, check: Callable[[], None]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:
        get_logger().warning(
            "readiness check failed", extra={"dependency": name, "error": type(exc).__name__}
        )
        return {
            "ok": False,
            "latencyMs": round((time.perf_counter() - started) * 1000, 2),
            "error": type(exc).__name__,
        }
    return {"ok": True, "latencyMs": round((time.perf_counter() - started) * 1000, 2)}


def routes(services: HttpServices) -> Router:
    router = Router()  # type: ignore[no-untyped-call]

    @router.get(
        "/health/live",
        summary="Liveness: the function runs (no I/O)",
        tags=["health"],
        responses=documented(200, "Alive", model=LiveOut),
    )
    def live() -> dict[str, Any]:
        return {"status": "ok"}

    @router.get(
        "/health/ready",
        summary="Readiness: Postgres and Redis reachable",
        tags=["health"],
        responses={
            **documented(200, "Ready", model=ReadyOut),
            503: {"description": "Not ready", "content": {"application/json": {"model": ReadyOut}}},
        },
    )
    def ready() -> Response[dict[str, Any]]:
        checks = {name: _timed(name, check) for name, check in services.readiness_checks().items()}
        healthy = all(c["ok"] for c in checks.values())
        return Response(
            status_code=200 if healthy else 503,
            content_type=content_types.APPLICATION_JSON,
            body={"status": "ok" if healthy else "unavailable", "checks": checks},
        )

    return router
