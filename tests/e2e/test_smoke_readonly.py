"""The prod deploy's read-only smoke test (scripts/smoke_readonly.py) against the e2e target: it
passes on a healthy stack, fails on a broken one, and writes nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.e2e.target import Target

pytestmark = pytest.mark.e2e

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "smoke_readonly.py"
_TABLES = ("users", "rooms", "memberships", "messages", "refresh_tokens", "outbox", "notifications")


def _smoke() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smoke_readonly", _SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _counts(db: Any) -> dict[str, int]:
    return {t: int(db.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"]) for t in _TABLES}


def test_read_only_smoke_passes_and_writes_nothing(e2e_target: Target, db: Any) -> None:
    if e2e_target.gateway is None:
        pytest.skip("row counts are only visible against the local gateway")
    before = _counts(db)
    assert _smoke().checks(e2e_target.http_url, e2e_target.ws_url) == []
    assert _counts(db) == before


def test_read_only_smoke_reports_a_stage_that_does_not_answer(e2e_target: Target) -> None:
    failures = _smoke().checks(e2e_target.http_url.rstrip("/") + "/no-such-stage", e2e_target.ws_url)
    assert any("/health/live" in f for f in failures)
