"""Versioned SQL migrations: files ``NNNN_name.sql`` applied in order, each in one transaction.

Applied versions are recorded in ``schema_migrations``; an advisory lock lets several deploys or
containers call :func:`migrate` at once safely. The ``migrate`` function runs it at deploy time;
``make migrate`` (``python -m chatflow_dev.migrate``) against ``DATABASE_URL``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

#: The DML-only role migration 0050 creates; every function but ``migrate`` connects as it.
RUNTIME_ROLE = "chatflow_app"
_LOCK_ID = 7_363_842_001  # arbitrary, constant: serializes concurrent migrators
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    folder = resources.files("chatflow.adapters.postgres") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def migrate(dsn: str) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    applied_now: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
            done = {version: (name, checksum) for version, name, checksum in rows}
            for migration in available_migrations():
                if migration.version in done:
                    name, checksum = done[migration.version]
                    if checksum != migration.checksum:
                        raise RuntimeError(f"migration {name} was changed after it was applied")
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())  # bytes: the file may hold several statements
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now
