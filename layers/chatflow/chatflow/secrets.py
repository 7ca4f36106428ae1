"""Secrets: from the environment locally, from Secrets Manager in the cloud (Powertools parameters).

In the cloud the CDK app sets ``*_SECRET_ARN`` instead of the values; each is fetched with
Powertools' ``get_secret`` (cached in the container for :data:`SECRET_MAX_AGE_S`, so a rotated
secret is picked up within minutes without a redeploy). Powertools parameters (and boto3 behind
them) are imported only when an ARN is set: local runs and functions without secrets never pay it.

:func:`dsn_resolver_for` / :func:`redis_password_resolver_for` pick the Postgres pools' and the
Redis connection's credential hooks from the settings; the function's container
(chatflow.container) hands them over when it builds those, so every function gets cloud
credentials the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from chatflow.settings import Settings, SettingsError

#: How long a fetched secret is reused before Secrets Manager is asked again.
SECRET_MAX_AGE_S = 300


_provider: Any = None


def _secrets_provider() -> Any:
    global _provider
    if _provider is None:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        _provider = SecretsProvider()
    return _provider


def fetch_secret(arn: str) -> str:
    """The secret string of ``arn`` (Powertools parameters, cached ``max_age`` per container)."""
    value = _secrets_provider().get(arn, max_age=SECRET_MAX_AGE_S)
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _json_or_none(raw: str) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def jwt_private_key(settings: Settings) -> str:
    """The ES256 signing key (PEM): ``JWT_PRIVATE_KEY`` or the secret ``JWT_PRIVATE_KEY_SECRET_ARN``.

    The secret may be the PEM itself or JSON ``{"privateKey": "<PEM>"}``.
    """
    if settings.jwt_private_key_secret_arn:
        raw = fetch_secret(settings.jwt_private_key_secret_arn)
        data = _json_or_none(raw)
        return str(data["privateKey"]) if data and "privateKey" in data else raw
    if settings.jwt_private_key:
        return settings.jwt_private_key
    raise SettingsError("JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_SECRET_ARN must be set to issue tokens")


def database_dsn(role: str, settings: Settings) -> str:
    """The DSN for ``role`` with the credentials of the RDS secret.

    Host/port/dbname come from the settings' URL (the RDS Proxy writer or reader endpoint), user
    and password from the secret (``{"username","password",...}`` as RDS generates it).
    """
    base = settings.database_url if role == "writer" else settings.reader_url
    if not settings.database_secret_arn:
        return base
    secret = _json_or_none(fetch_secret(settings.database_secret_arn)) or {}
    parts = urlsplit(base)
    user = quote(str(secret.get("username", parts.username or "")), safe="")
    password = quote(str(secret.get("password", "")), safe="")
    host = parts.hostname or str(secret.get("host", ""))
    port = parts.port or secret.get("port")
    netloc = f"{user}:{password}@{host}" + (f":{port}" if port else "")
    path = parts.path if parts.path not in ("", "/") else f"/{secret.get('dbname', 'chatflow')}"
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def redis_password(settings: Settings) -> str | None:
    """The Redis AUTH token from ``REDIS_AUTH_SECRET_ARN`` (plain string or ``{"password": ...}``)."""
    if not settings.redis_auth_secret_arn:
        return None
    raw = fetch_secret(settings.redis_auth_secret_arn)
    data = _json_or_none(raw)
    return str(data.get("password") or data.get("authToken") or "") if data else raw


def dsn_resolver_for(settings: Settings) -> Callable[[str, Settings], str] | None:
    """The Postgres DSN hook these settings call for: RDS IAM auth tokens (``DATABASE_IAM_AUTH``,
    preferred), the RDS secret (``DATABASE_SECRET_ARN``), or None (use ``DATABASE_URL`` as is)."""
    if settings.database_iam_auth:
        from chatflow.adapters.postgres.iam_auth import iam_dsn_resolver

        return iam_dsn_resolver
    if settings.database_secret_arn:
        return database_dsn
    return None


def redis_password_resolver_for(settings: Settings) -> Callable[[Settings], str | None] | None:
    """The Redis AUTH hook these settings call for (``REDIS_AUTH_SECRET_ARN``), or None."""
    return redis_password if settings.redis_auth_secret_arn else None
