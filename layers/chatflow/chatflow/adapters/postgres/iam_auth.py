"""RDS Proxy IAM authentication: a DSN whose password is a short-lived IAM auth token.

The CDK app sets ``DATABASE_IAM_AUTH=true`` and ``DATABASE_URL=postgresql://<user>@<proxy>/...``;
the proxy requires IAM auth and TLS, so no database password is ever given to a function (it needs
only ``rds-db:connect`` as that user). ``generate_db_auth_token`` signs locally (SigV4, no network
call); a token is valid for 15 minutes and is checked only when a connection is opened, so call
:func:`iam_dsn` for every new connection (or pool), never cache the result for longer.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from chatflow.settings import Settings


@cache
def _rds_client(region: str) -> Any:
    # botocore directly (its RDS client carries generate_db_auth_token): boto3 would only add
    # import time at cold start. One client per region, reused for every new connection's token.
    import botocore.session

    return botocore.session.get_session().create_client("rds", region_name=region)


def auth_token(host: str, port: int, user: str, region: str, client: Any | None = None) -> str:
    """An RDS IAM auth token for ``user`` at ``host:port`` (botocore imported only here)."""
    if client is None:
        client = _rds_client(region)
    return str(client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user, Region=region))


def iam_dsn(url: str, settings: Settings, client: Any | None = None) -> str:
    """``url`` with an IAM auth token as the password (unchanged when IAM auth is off)."""
    if not settings.database_iam_auth:
        return url
    parts = urlsplit(url)
    if not parts.hostname or not parts.username:
        raise ValueError("DATABASE_URL must name the host and the user for IAM authentication")
    port = parts.port or 5432
    token = auth_token(parts.hostname, port, parts.username, settings.aws_region, client)
    netloc = f"{quote(parts.username, safe='')}:{quote(token, safe='')}@{parts.hostname}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def iam_dsn_resolver(role: str, settings: Settings) -> str:
    """Signature of ``chatflow.adapters.postgres.pool.dsn_resolver``."""
    return iam_dsn(settings.database_url if role == "writer" else settings.reader_url, settings)
