"""The dependency rule: the chat domain modules load no AWS, Postgres or Redis client library.

Checked in a fresh interpreter (this test process has them all loaded already).
"""

from __future__ import annotations

import json
import subprocess
import sys

DOMAIN_MODULES = (
    "chatflow.domain.rooms",
    "chatflow.domain.messages",
    "chatflow.domain.room_models",
    "chatflow.domain.notifications",
    "chatflow.domain.analytics",
)
FORBIDDEN = ("boto3", "botocore", "psycopg", "psycopg_pool", "redis")


def test_domain_modules_import_no_infrastructure_clients() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {DOMAIN_MODULES!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == []
