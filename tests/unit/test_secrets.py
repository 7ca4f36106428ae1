"""Secrets resolution. Secrets Manager cannot run here: the client is a botocore Stubber (a fake of
the AWS API, declared as such); everything above it -- Powertools' provider and its cache, our
parsing and the pool/redis hook wiring -- is the real code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.stub import Stubber

from chatflow import secrets
from chatflow.settings import Settings, SettingsError

ARN_DB = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
ARN_JWT = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf"
ARN_REDIS = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-AbCdEf"


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """Secrets Manager as a botocore Stubber (it cannot run here), behind the module's provider."""
    client = boto3.client(
        "secretsmanager", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    stubber.activate()
    monkeypatch.setattr(secrets, "_provider", SecretsProvider(boto3_client=client))
    yield stubber
    stubber.deactivate()


def _respond(stub: Stubber, arn: str, value: str) -> None:
    stub.add_response(
        "get_secret_value",
        {"ARN": arn, "Name": arn.rsplit(":", 1)[1], "SecretString": value},
        {"SecretId": arn},
    )


def test_database_dsn_takes_credentials_from_the_secret_and_caches(stub: Stubber) -> None:
    _respond(
        stub, ARN_DB, json.dumps({"username": "app", "password": "p@ss/w:rd", "host": "x", "port": 5432})
    )
    settings = Settings(
        database_url="postgresql://proxy.example:5432/chatflow?sslmode=require",
        database_reader_url="postgresql://proxy-ro.example:5432/chatflow?sslmode=require",
        database_secret_arn=ARN_DB,
    )
    writer = secrets.database_dsn("writer", settings)
    reader = secrets.database_dsn("reader", settings)  # served from the cache: one API call only
    assert writer == "postgresql://app:p%40ss%2Fw%3Ard@proxy.example:5432/chatflow?sslmode=require"
    assert reader.startswith("postgresql://app:p%40ss%2Fw%3Ard@proxy-ro.example:5432/chatflow")
    stub.assert_no_pending_responses()


def test_jwt_key_from_secret_plain_or_json(stub: Stubber) -> None:
    _respond(stub, ARN_JWT, json.dumps({"privateKey": "-----BEGIN PRIVATE KEY-----\nabc"}))
    assert secrets.jwt_private_key(Settings(jwt_private_key_secret_arn=ARN_JWT)).startswith("-----BEGIN")


def test_redis_password_and_local_fallbacks(stub: Stubber) -> None:
    _respond(stub, ARN_REDIS, "plain-token")
    assert secrets.redis_password(Settings(redis_auth_secret_arn=ARN_REDIS)) == "plain-token"
    assert secrets.redis_password(Settings()) is None
    assert secrets.database_dsn("writer", Settings(database_url="postgresql://a@b/c")) == "postgresql://a@b/c"
    assert secrets.jwt_private_key(Settings(jwt_private_key="PEM")) == "PEM"
    with pytest.raises(SettingsError):
        secrets.jwt_private_key(Settings())


def test_the_container_wires_cloud_credentials_only_when_arns_are_set() -> None:
    from chatflow.container import Container

    plain = Container(Settings())
    assert plain.postgres.dsn_resolver is None
    assert plain.redis.password_resolver is None
    cloud = Container(Settings(database_secret_arn=ARN_DB, redis_auth_secret_arn=ARN_REDIS))
    resolver: Any = cloud.postgres.dsn_resolver
    assert resolver is secrets.database_dsn
    assert cloud.redis.password_resolver is secrets.redis_password


def test_secrets_module_does_not_import_boto3_locally() -> None:
    import subprocess
    import sys

    code = "import sys, chatflow.secrets; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_iam_auth_takes_precedence_over_the_database_secret() -> None:
    from chatflow.adapters.postgres import iam_auth
    from chatflow.container import Container

    container = Container(Settings(database_iam_auth=True, database_secret_arn=ARN_DB))
    assert container.postgres.dsn_resolver is iam_auth.iam_dsn_resolver


def test_resolvers_follow_the_settings() -> None:
    from chatflow.adapters.postgres import iam_auth

    assert secrets.dsn_resolver_for(Settings()) is None
    assert secrets.dsn_resolver_for(Settings(database_secret_arn=ARN_DB)) is secrets.database_dsn
    assert secrets.dsn_resolver_for(Settings(database_iam_auth=True)) is iam_auth.iam_dsn_resolver
    assert secrets.redis_password_resolver_for(Settings()) is None
    assert (
        secrets.redis_password_resolver_for(Settings(redis_auth_secret_arn=ARN_REDIS))
        is secrets.redis_password
    )


def test_redis_client_uses_the_auth_secret(stub: Stubber) -> None:
    """REDIS_AUTH_SECRET_ARN alone is enough: every function's container fetches the token."""
    from chatflow.container import Container

    _respond(stub, ARN_REDIS, json.dumps({"password": "from-secrets-manager"}))
    container = Container(Settings(redis_url="redis://127.0.0.1:1/0", redis_auth_secret_arn=ARN_REDIS))
    try:
        client = container.redis.client
        assert client.connection_pool.connection_kwargs["password"] == "from-secrets-manager"
    finally:
        container.close()
