"""The runtime role (migration 0050) against the real Postgres: DML works, DDL and
ownership-changing statements fail, it owns nothing, and migrations still run as the owner.

(The whole suite also runs the application as this role: tests/conftest.py ``chatflow_env``.)
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from chatflow.adapters.postgres.migrate import RUNTIME_ROLE, available_migrations, migrate
from tests.conftest import runtime_url


@pytest.fixture
def app_conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(runtime_url(database_url), autocommit=True) as conn:
        yield conn


@pytest.fixture
def owner_conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def _tables(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    ).fetchall()
    return [str(r[0]) for r in rows]


def test_the_connection_really_is_the_runtime_role(app_conn: psycopg.Connection[tuple[object, ...]]) -> None:
    row = app_conn.execute(
        "SELECT current_user, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls "
        "FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert row == (RUNTIME_ROLE, False, False, False, False)


def test_runtime_role_owns_nothing(owner_conn: psycopg.Connection[tuple[object, ...]]) -> None:
    owned = owner_conn.execute(
        """SELECT 'relation ' || relname FROM pg_class WHERE relowner = %(r)s::regrole
           UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner = %(r)s::regrole
           UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proowner = %(r)s::regrole
           UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typowner = %(r)s::regrole
           UNION ALL SELECT 'database ' || datname FROM pg_database WHERE datdba = %(r)s::regrole""",
        {"r": RUNTIME_ROLE},
    ).fetchall()
    assert owned == []


def test_dml_on_every_application_table_and_sequence(
    owner_conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    tables = [t for t in _tables(owner_conn) if t != "schema_migrations"]
    assert len(tables) >= 8
    for table in tables:
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            (granted,) = owner_conn.execute(
                "SELECT has_table_privilege(%s, %s, %s)", (RUNTIME_ROLE, f"public.{table}", privilege)
            ).fetchone() or (False,)
            assert granted, f"{RUNTIME_ROLE} lacks {privilege} on {table}"
        (truncate,) = owner_conn.execute(
            "SELECT has_table_privilege(%s, %s, 'TRUNCATE')", (RUNTIME_ROLE, f"public.{table}")
        ).fetchone() or (True,)
        assert not truncate, table
    sequences = owner_conn.execute(
        "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
    ).fetchall()
    for (sequence,) in sequences:
        (usable,) = owner_conn.execute(
            "SELECT has_sequence_privilege(%s, %s, 'USAGE')", (RUNTIME_ROLE, f"public.{sequence}")
        ).fetchone() or (False,)
        assert usable, sequence


def test_real_writes_and_reads_as_the_runtime_role(app_conn: psycopg.Connection[tuple[object, ...]]) -> None:
    with app_conn.transaction(force_rollback=True):
        user = app_conn.execute(
            "INSERT INTO users (id, handle, display_name, password_hash) "
            "VALUES (gen_random_uuid(), 'runtime-role-probe', 'Probe', 'x') RETURNING id"
        ).fetchone()
        assert user is not None
        app_conn.execute("UPDATE users SET display_name = 'Probe 2' WHERE id = %s", (user[0],))
        row = app_conn.execute("SELECT display_name FROM users WHERE id = %s", (user[0],)).fetchone()
        assert row == ("Probe 2",)
        # bigserial: the sequence behind notifications.id is usable.
        app_conn.execute("SELECT nextval(pg_get_serial_sequence('notifications', 'id'))")
        app_conn.execute("DELETE FROM users WHERE id = %s", (user[0],))


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE probe (id int)",
        "CREATE TEMPORARY TABLE probe (id int)",
        "CREATE SCHEMA probe",
        "CREATE INDEX probe_idx ON users (display_name)",
        "CREATE FUNCTION probe() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE VIEW probe AS SELECT 1",
        "ALTER TABLE users ADD COLUMN probe int",
        "ALTER TABLE users OWNER TO chatflow_app",
        "DROP TABLE messages",
        "TRUNCATE messages",
        "ALTER TABLE users DISABLE ROW LEVEL SECURITY",
        "COMMENT ON TABLE users IS 'probe'",
        "CREATE ROLE probe",
        "SELECT * FROM schema_migrations",
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'x', 'x')",
    ],
)
def test_ddl_and_ownership_changes_are_refused(
    app_conn: psycopg.Connection[tuple[object, ...]], statement: str
) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        app_conn.execute(statement)


def test_granting_privileges_onwards_changes_nothing(
    app_conn: psycopg.Connection[tuple[object, ...]], owner_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    # Without the grant option PostgreSQL only warns ("no privileges were granted").
    app_conn.execute("GRANT SELECT ON users TO PUBLIC")
    (public,) = owner_conn.execute("SELECT has_table_privilege('public', 'users', 'SELECT')").fetchone() or (
        True,
    )
    assert public is False


def test_migrations_still_run_as_the_owner_and_new_tables_reach_the_runtime_role(
    database_url: str, owner_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    assert migrate(database_url) == []  # the owner re-runs them (nothing pending)
    assert any("runtime_role" in m.name for m in available_migrations())
    # A later migration's table (created by the owner) gets the grants by default privileges.
    owner_conn.execute("CREATE TABLE runtime_role_later (id int PRIMARY KEY)")
    try:
        with psycopg.connect(runtime_url(database_url), autocommit=True) as conn:
            conn.execute("INSERT INTO runtime_role_later VALUES (1)")
            assert conn.execute("SELECT count(*) FROM runtime_role_later").fetchone() == (1,)
            conn.execute("DELETE FROM runtime_role_later")
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("DROP TABLE runtime_role_later")
    finally:
        owner_conn.execute("DROP TABLE runtime_role_later")


def test_the_migration_file_creates_the_role_named_in_code() -> None:
    (sql,) = [m.sql for m in available_migrations() if "runtime_role" in m.name]
    assert f"CREATE ROLE {RUNTIME_ROLE} LOGIN" in sql
