"""The pool pings a connection on checkout only when it sat idle (real Postgres).

A connection returned moments ago is handed out as is (no extra round trip per request); one that
sat longer than CHECK_IDLE_AFTER_S is checked first, so a connection that died meanwhile (here:
its backend terminated) is replaced transparently instead of failing the request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from chatflow.settings import Settings


@pytest.fixture
def one_connection_pool(
    chatflow_env: dict[str, str],
) -> Iterator[ConnectionPool[psycopg.Connection[DictRow]]]:
    from chatflow.adapters.postgres import pool

    opened = pool.open_pool(
        "writer", Settings(database_url=chatflow_env["DATABASE_URL"], db_pool_min_size=1, db_pool_max_size=1)
    )
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts psycopg_pool's liveness check (the empty query) while delegating to it."""
    calls: list[int] = []
    original = ConnectionPool.check_connection

    def counted(conn: Any) -> None:
        calls.append(1)
        original(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted))
    return calls


def _backend_pid(p: ConnectionPool[psycopg.Connection[DictRow]]) -> int:
    with p.connection() as conn:
        row = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
    assert row is not None
    return int(row["pid"])


def test_a_connection_returned_moments_ago_is_not_pinged(
    one_connection_pool: ConnectionPool[psycopg.Connection[DictRow]], checks: list[int]
) -> None:
    first = _backend_pid(one_connection_pool)  # a new connection: checked once
    before = len(checks)
    assert [_backend_pid(one_connection_pool) for _ in range(5)] == [first] * 5
    assert len(checks) == before


def test_an_idle_connection_is_checked_and_a_dead_one_replaced(
    one_connection_pool: ConnectionPool[psycopg.Connection[DictRow]],
    checks: list[int],
    db: psycopg.Connection[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chatflow.adapters.postgres import pool

    old = _backend_pid(one_connection_pool)
    db.execute("SELECT pg_terminate_backend(%s)", (old,))  # the connection dies while idle
    monkeypatch.setattr(pool, "CHECK_IDLE_AFTER_S", 0.0)  # ...and has sat "long enough"
    before = len(checks)
    new = _backend_pid(one_connection_pool)  # no error: the check caught it, the pool reconnected
    assert new != old
    assert len(checks) > before
