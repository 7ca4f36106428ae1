"""The pool's dsn_resolver hook (wired by chatflow.secrets in the cloud), against real Postgres."""

from __future__ import annotations

import pytest

from chatflow.settings import Settings


def test_pool_calls_the_resolver_for_every_new_connection(
    monkeypatch: pytest.MonkeyPatch, chatflow_env: dict[str, str]
) -> None:
    """Real Postgres: a resolver-backed pool reconnects with a freshly resolved DSN each time."""
    from chatflow.adapters.postgres import pool

    calls: list[str] = []

    def resolver(role: str, settings: Settings) -> str:
        calls.append(role)
        return chatflow_env["DATABASE_URL"]

    monkeypatch.setattr(pool, "dsn_resolver", resolver)
    opened = pool._open(
        "writer", Settings(database_url="postgresql://unused@127.0.0.1:1/x", db_pool_min_size=1)
    )
    try:
        with opened.connection() as conn:
            assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        before = len(calls)
        with opened.connection() as conn:
            conn.close()  # a dropped connection: the pool replaces it with a new one
        with opened.connection() as conn:
            assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        assert len(calls) > before
    finally:
        opened.close()
