"""The pools' dsn_resolver hook (chatflow.secrets picks it; the container wires it), against real Postgres."""

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

    opened = pool.open_pool(
        "writer", Settings(database_url="postgresql://unused@127.0.0.1:1/x", db_pool_min_size=1), resolver
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


def test_pool_uses_the_database_secret_without_explicit_wiring(
    monkeypatch: pytest.MonkeyPatch, chatflow_env: dict[str, str]
) -> None:
    """DATABASE_SECRET_ARN alone is enough: the container hands chatflow.secrets' hook to the
    pools. Secrets Manager is a botocore Stubber (cannot run here); Postgres is this run's real
    database."""
    import json

    import boto3
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from botocore.stub import Stubber

    from chatflow import secrets
    from chatflow.container import Container

    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-XyZ"
    client = boto3.client(
        "secretsmanager", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    user = chatflow_env["DATABASE_URL"].split("://", 1)[1].split("@", 1)[0].split(":", 1)[0]
    stub.add_response(
        "get_secret_value",
        {"ARN": arn, "Name": "db", "SecretString": json.dumps({"username": user, "password": ""})},
        {"SecretId": arn},
    )
    stub.activate()
    monkeypatch.setattr(secrets, "_provider", SecretsProvider(boto3_client=client))
    try:
        container = Container(Settings(database_url=chatflow_env["DATABASE_URL"], database_secret_arn=arn))
        try:
            with container.postgres.writer().connection() as conn:
                assert conn.execute("SELECT current_user AS u").fetchone() == {"u": user}
        finally:
            container.close()
        stub.assert_no_pending_responses()  # the secret was really fetched
    finally:
        stub.deactivate()
