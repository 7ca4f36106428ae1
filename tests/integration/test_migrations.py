from __future__ import annotations

import psycopg

from chatflow.adapters.postgres.migrate import available_migrations, migrate


def test_migrations_are_applied_once_and_recorded(database_url: str) -> None:
    # The session fixture already migrated; a second run applies nothing.
    assert migrate(database_url) == []
    with psycopg.connect(database_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [m.version for m in available_migrations()]


def test_core_tables_exist(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    assert {"users", "rooms", "memberships", "messages", "refresh_tokens", "outbox"} <= tables
