"""GET /health/live (no I/O) and GET /health/ready (Postgres and Redis, each with its latency)."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.observability import get_logger

router = Router()  # type: ignore[no-untyped-call]


@router.get("/health/live", summary="Liveness: the function runs (no I/O)", tags=["health"])
def live() -> dict[str, Any]:
    return {"status": "ok"}


def _check_postgres() -> None:
    from chatflow.adapters.postgres.pool import writer

    with writer().connection() as conn:
        conn.execute("SELECT 1").fetchone()


def _check_redis() -> None:
    from chatflow.adapters.redis_client import get_redis

    get_redis().ping()


def _timed(name: str, check: Any) -> dict[str, Any]:
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


@router.get("/health/ready", summary="Readiness: Postgres and Redis reachable", tags=["health"])
def ready() -> Response[dict[str, Any]]:
    checks = {"postgres": _timed("postgres", _check_postgres), "redis": _timed("redis", _check_redis)}
    healthy = all(c["ok"] for c in checks.values())
    return Response(
        status_code=200 if healthy else 503,
        content_type=content_types.APPLICATION_JSON,
        body={"status": "ok" if healthy else "unavailable", "checks": checks},
    )
