"""Session fixtures: a throwaway Postgres database and Redis key prefix per run, cleaned up after.

Tests use the machine's real servers (``TEST_DATABASE_ADMIN_URL`` / ``TEST_REDIS_URL`` override
the defaults). Every test run gets a fresh database ``chatflow_t_<random>`` migrated from scratch
and a Redis prefix ``cft:<random>:``; both are removed at the end of the session.
With pytest-xdist each worker gets its own database and prefix.

Migrations run as the owner (the admin user); the application -- every handler, the local gateway,
the ``db`` fixture -- runs as the DML-only runtime role of migration 0050, as every function but
``migrate`` does in the cloud, so a code path that needs more than DML fails here first.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest
import redis

from tests.support.e2e_target import e2e_target  # noqa: F401 -- the session's one e2e/acceptance target

if TYPE_CHECKING:
    from chatflow.container import Container

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _db_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def runtime_url(owner_url: str) -> str:
    """``owner_url`` signed in as the runtime role instead (the test server trusts local users)."""
    from urllib.parse import urlsplit, urlunsplit

    from chatflow.adapters.postgres.migrate import RUNTIME_ROLE

    parts = urlsplit(owner_url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{RUNTIME_ROLE}@{host}"))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    from chatflow.adapters.postgres.migrate import migrate

    name = f"chatflow_t_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _db_url(name)
    try:
        migrate(url)
        yield url
    finally:
        from tests.support.lambdas import reset_handlers

        reset_handlers()  # their containers hold pools on this database
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    prefix = f"cft:{secrets.token_hex(4)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        batch = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(batch), 500):
            client.delete(*batch[start : start + 500])
    finally:
        client.close()


@pytest.fixture(scope="session")
def signing_keys() -> tuple[str, str]:
    """A fresh ES256 key pair for this run (private PEM, public PEM)."""
    from chatflow.auth.keys import generate_es256_pem_pair

    return generate_es256_pem_pair()


@pytest.fixture(scope="session")
def chatflow_env(
    database_url: str, redis_prefix: str, signing_keys: tuple[str, str]
) -> Iterator[dict[str, str]]:
    """The process environment every handler of this run reads its settings from."""
    private, public = signing_keys
    env = {
        "ENV": "test",
        "DATABASE_URL": runtime_url(database_url),
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": redis_prefix,
        "JWT_PRIVATE_KEY": private,
        "JWT_PUBLIC_KEYS": public,
        "POWERTOOLS_SERVICE_NAME": "chatflow-test",
        "POWERTOOLS_METRICS_NAMESPACE": "ChatflowTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        # scrypt N=2^12 instead of 2^17: every registration and login of the run stays fast
        # (test_auth_rehash.py proves the upgrade to a higher cost at sign-in).
        "PASSWORD_SCRYPT_LOG2_N": "12",
        # 410 clean-up tests expect it at once; the grace window after registration (a 410
        # racing $connect) has its own tests, which set it (test_ws_revocation.py).
        "GONE_GRACE_S": "0",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from tests.support.settings import reset_settings_cache

    reset_settings_cache()
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    reset_settings_cache()


@pytest.fixture
def container(chatflow_env: dict[str, str]) -> Iterator[Container]:
    """The services wired to this run's Postgres and Redis, as a function builds them
    (chatflow.container); closed afterwards. Tests that change the environment first (e.g. the
    ``ws`` harness) must be requested before it."""
    from chatflow.container import Container
    from chatflow.settings import get_settings

    built = Container(get_settings())
    yield built
    built.close()


@pytest.fixture
def owner_env(
    chatflow_env: dict[str, str], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """``chatflow_env`` as the ``migrate`` function has it in the cloud: signed in as the schema
    owner (migrations, operator commands), not as the DML-only runtime role. The functions
    cold-start with it (and again afterwards)."""
    from tests.support.lambdas import reset_handlers

    monkeypatch.setenv("DATABASE_URL", database_url)
    reset_handlers()
    yield {**chatflow_env, "DATABASE_URL": database_url}
    monkeypatch.undo()
    reset_handlers()


@pytest.fixture
def db(chatflow_env: dict[str, str]) -> Iterator[psycopg.Connection[dict[str, object]]]:
    """A direct autocommit connection to this run's database, for assertions."""
    from psycopg.rows import dict_row

    with psycopg.connect(chatflow_env["DATABASE_URL"], autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def rds(chatflow_env: dict[str, str]) -> Iterator[redis.Redis[str]]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()
