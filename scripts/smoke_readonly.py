"""Read-only smoke test of a deployed stage (prod): proves the deploy is wired end to end and
writes NOTHING (no users, rooms or messages).

- ``GET /health/live`` and ``GET /health/ready`` (the function reaches Postgres through RDS Proxy
  and Valkey: each check must be ok), ``GET /openapi.json``, ``GET /.well-known/jwks.json``;
- an authenticated route without a token answers 401 (the authorizer is attached);
- the WebSocket handshake without a token, and with a forged one, is refused.

Usage: CHATFLOW_HTTP_URL=... CHATFLOW_WS_URL=... python scripts/smoke_readonly.py
Every request has a timeout; exit code 1 on any failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

_TIMEOUT_S = 15.0


#: A syntactically plausible but unsigned bearer token: must be refused.
_FORGED = "x.y.z"


def _get(url: str, bearer: str | None = None) -> tuple[int, Any]:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an HTTP URL: {url}")
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 -- scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as answer:  # noqa: S310 -- scheme checked above
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"null")
        except ValueError:
            return exc.code, body.decode(errors="replace")


async def _ws_refused(url: str) -> bool:
    """True when the handshake is refused (an HTTP status instead of 101)."""
    import websockets

    try:
        async with websockets.connect(url, open_timeout=_TIMEOUT_S):
            return False
    except websockets.InvalidStatus:
        return True


def checks(http_url: str, ws_url: str) -> list[str]:
    failures: list[str] = []
    base = http_url.rstrip("/")
    status, body = _get(f"{base}/health/live")
    if status != 200:
        failures.append(f"GET /health/live: {status} {body}")
    status, body = _get(f"{base}/health/ready")
    if status != 200 or not all(c.get("ok") for c in (body or {}).get("checks", {}).values()):
        failures.append(f"GET /health/ready: {status} {body}")
    status, body = _get(f"{base}/openapi.json")
    if status != 200 or not isinstance(body, dict) or not body.get("paths"):
        failures.append(f"GET /openapi.json: {status}")
    status, body = _get(f"{base}/.well-known/jwks.json")
    if status != 200 or not (body or {}).get("keys"):
        failures.append(f"GET /.well-known/jwks.json: {status} {body}")
    status, body = _get(f"{base}/users/me")
    if status != 401:
        failures.append(f"GET /users/me without a token: {status}, expected 401")
    status, body = _get(f"{base}/users/me", bearer=_FORGED)
    if status not in (401, 403):
        failures.append(f"GET /users/me with a forged token: {status}, expected 401/403")
    separator = "&" if "?" in ws_url else "?"
    for label, url in (
        ("without a token", ws_url),
        ("with a forged token", f"{ws_url}{separator}token={_FORGED}"),
    ):
        if not asyncio.run(_ws_refused(url)):
            failures.append(f"WebSocket handshake {label} was accepted")
    return failures


def main() -> int:
    http_url, ws_url = os.environ.get("CHATFLOW_HTTP_URL"), os.environ.get("CHATFLOW_WS_URL")
    if not http_url or not ws_url:
        print("set CHATFLOW_HTTP_URL and CHATFLOW_WS_URL", file=sys.stderr)
        return 2
    failures = checks(http_url, ws_url)
    for failure in failures:
        print("FAIL", failure)
    print("read-only smoke:", "FAILED" if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
