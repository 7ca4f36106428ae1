"""The deploy-time pieces that run in Lambda: the migrate/JWT-key custom resource, the RDS IAM DSN,
and the SnapStart hooks -- against the real Postgres and Redis of the machine.

Secrets Manager is a control plane that cannot run here: :class:`FakeSecretsManager` stands in for
it (get/put of one secret string), and says so. CloudFormation's response URL is a real local HTTP
server, so the custom-resource protocol (PUT of the JSON answer) is exercised for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt
import psycopg
import pytest

from chatflow.auth.tokens import TokenSigner, TokenVerifier, load_public_keys
from chatflow.container import Container
from infra import catalog
from tests.support.lambdas import load_handler_module


class FakeSecretsManager:
    """FAKE: stands in for the Secrets Manager API (get_secret_value / put_secret_value)."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.puts = 0

    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        return {"SecretString": self.value}

    def put_secret_value(self, SecretId: str, SecretString: str) -> None:
        self.value = SecretString
        self.puts += 1


@pytest.fixture
def migrate_handler() -> Any:
    return load_handler_module("migrate")


@pytest.fixture
def response_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local stand-in for CloudFormation's pre-signed response URL (records PUT bodies)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/response", received
    server.shutdown()
    server.server_close()


def _event(
    request_type: str, props: dict[str, Any], url: str, old: dict[str, Any] | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/Chatflow-test/1",
        "RequestId": "req-1",
        "LogicalResourceId": "Resource",
        "ResourceProperties": props,
    }
    if old is not None:
        event["OldResourceProperties"] = old
        event["PhysicalResourceId"] = "chatflow-" + props["Action"]
    return event


# --- migrations --------------------------------------------------------------------------------
def test_migrate_custom_resource_answers_cloudformation(
    migrate_handler: Any,
    chatflow_env: dict[str, str],
    database_url: str,
    response_server: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.settings import reset_settings_cache

    url, received = response_server
    event = _event("Create", {"Action": "migrate", "MigrationsHash": "x"}, url)
    # As the runtime role (every other function's user) the migration bookkeeping is off limits.
    refused = migrate_handler.handler(event, None)
    assert refused["Status"] == "FAILED"
    assert "InsufficientPrivilege" in refused["Reason"]
    # As the owner, which is what the stack gives `migrate` alone.
    monkeypatch.setenv("DATABASE_URL", database_url)
    reset_settings_cache()
    result = migrate_handler.handler(event, None)
    reset_settings_cache()  # monkeypatch restores the runtime URL after the test
    assert result["Status"] == "SUCCESS", result["Reason"]
    assert received == [refused, result]
    assert received[1]["PhysicalResourceId"] == "chatflow-migrate"
    # The session database is already migrated: nothing new, and every file is recorded.
    assert received[1]["Data"] == {"Applied": ""}
    with psycopg.connect(database_url) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM schema_migrations").fetchall()}
    assert {"0001_core.sql", "0050_runtime_role.sql"} <= names


def test_failures_reach_cloudformation_as_failed(
    migrate_handler: Any, response_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = response_server
    result = migrate_handler.handler(_event("Create", {"Action": "drop-everything"}, url), None)
    assert result["Status"] == "FAILED"
    assert "unknown Action" in result["Reason"]
    assert received == [result]


def test_delete_never_touches_the_database(
    migrate_handler: Any, response_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = response_server
    event = _event("Delete", {"Action": "migrate"}, url)
    event["PhysicalResourceId"] = "chatflow-migrate"
    assert migrate_handler.handler(event, None)["Status"] == "SUCCESS"
    assert received[0]["PhysicalResourceId"] == "chatflow-migrate"


# --- operator commands (direct invocations: make deploy's check, make admin) ---------------------
def test_operator_migrate_reports_the_schema_head(migrate_handler: Any, owner_env: dict[str, str]) -> None:
    from chatflow.adapters.postgres.migrate import available_migrations

    answer = migrate_handler.handler({"command": ["migrate"]}, None)
    assert answer["exitCode"] == 0, answer["error"]
    state = json.loads(answer["output"])
    shipped = available_migrations()
    # The session database is already migrated: nothing new, and it is at the newest file.
    assert state == {"appliedNow": [], "head": shipped[-1].name, "migrations": len(shipped)}


def test_operator_runs_the_admin_cli_in_the_function(migrate_handler: Any, owner_env: dict[str, str]) -> None:
    from tests.support.identity import http_client, register, unique_handle
    from tests.support.lambdas import reset_handlers

    reset_handlers()
    handle = unique_handle("first-admin")
    register(http_client(), handle)
    answer = migrate_handler.handler({"command": ["promote", handle]}, None)
    assert answer["exitCode"] == 0, answer["error"]
    assert json.loads(answer["output"])["role"] == "admin"
    shown = migrate_handler.handler({"command": ["show", handle.upper()]}, None)
    assert json.loads(shown["output"])["role"] == "admin"


@pytest.mark.parametrize(
    ("command", "code", "message"),
    [
        ("promote alice", 2, "expected"),
        ([], 2, "expected"),
        (["drop-database"], 2, "invalid choice"),
        (["promote"], 2, "handle"),
        (["show", "nobody-here-at-all"], 1, "no user"),
    ],
)
def test_operator_mistakes_get_an_exit_code_and_a_message(
    migrate_handler: Any, chatflow_env: dict[str, str], command: Any, code: int, message: str
) -> None:
    from tests.support.lambdas import reset_handlers

    reset_handlers()
    answer = migrate_handler.handler({"command": command}, None)
    assert answer["exitCode"] == code
    assert message in answer["error"]


# --- JWT signing key ---------------------------------------------------------------------------------
def test_first_deploy_generates_a_key_pair_whose_public_key_verifies(migrate_handler: Any) -> None:
    secrets = FakeSecretsManager("RandomPlaceholderFromCdk")
    data = migrate_handler.ensure_jwt_keys("arn:secret", rotate=False, client=secrets)
    stored = json.loads(secrets.value)
    assert stored["privateKey"].startswith("-----BEGIN PRIVATE KEY-----")
    # One truth for key ids: KeyId is the kid the signer puts in tokens and verifiers look up.
    signer = TokenSigner(stored["privateKey"], issuer="chatflow", audience="clients", ttl_s=60)
    assert data["KeyId"] == signer.kid
    verifier = TokenVerifier(load_public_keys(data["PublicKeys"]), issuer="chatflow", audience="clients")
    user_id = uuid.uuid4()
    token = signer.issue(user_id=user_id, handle="ann", role="user").token
    assert jwt.get_unverified_header(token)["kid"] == data["KeyId"]
    assert verifier.verify(token).user_id == user_id


def test_redeploy_keeps_the_key_and_rotation_keeps_the_previous_public_key(migrate_handler: Any) -> None:
    secrets = FakeSecretsManager("placeholder")
    first = migrate_handler.ensure_jwt_keys("arn:secret", rotate=False, client=secrets)
    old_private = json.loads(secrets.value)["privateKey"]
    again = migrate_handler.ensure_jwt_keys("arn:secret", rotate=False, client=secrets)
    assert again == first
    assert secrets.puts == 1
    rotated = migrate_handler.ensure_jwt_keys("arn:secret", rotate=True, client=secrets)
    assert rotated["KeyId"] != first["KeyId"]
    new_public, old_public = rotated["PublicKeys"].split("\n\n")
    assert old_public == first["PublicKeys"]
    old_token = jwt.encode({"sub": "u1"}, old_private, algorithm="ES256")
    assert jwt.decode(old_token, old_public, algorithms=["ES256"])["sub"] == "u1"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(old_token, new_public, algorithms=["ES256"])


def test_rotation_is_requested_by_changing_the_rotation_property(
    migrate_handler: Any, monkeypatch: Any
) -> None:
    calls: list[bool] = []

    def record(arn: str, *, rotate: bool) -> dict[str, str]:
        calls.append(rotate)
        return {"KeyId": "k"}

    monkeypatch.setattr(migrate_handler, "ensure_jwt_keys", record)
    props = {"Action": "jwt-keys", "SecretArn": "arn:s", "Rotation": "2"}
    migrate_handler.run_action("jwt-keys", props, {**props, "Rotation": "1"}, "Update")
    migrate_handler.run_action("jwt-keys", props, props, "Update")
    migrate_handler.run_action("jwt-keys", props, {}, "Create")
    assert calls == [True, False, False]


# --- RDS IAM authentication ----------------------------------------------------------------------------
def test_iam_dsn_puts_a_signed_token_in_the_password(chatflow_env: dict[str, str]) -> None:
    from chatflow.adapters.postgres.iam_auth import iam_dsn
    from chatflow.settings import Settings

    url = "postgresql://chatflow_admin@proxy.example:5432/chatflow?sslmode=verify-full&sslrootcert=system"
    assert iam_dsn(url, Settings(database_iam_auth=False)) == url
    # boto3 signs the token locally (SigV4 presign): real boto3, dummy credentials, no network.
    dsn = iam_dsn(url, Settings(database_iam_auth=True, aws_region="eu-west-1"))
    parts = urlsplit(dsn)
    assert parts.username == "chatflow_admin"
    assert parts.hostname == "proxy.example"
    assert parts.query == "sslmode=verify-full&sslrootcert=system"
    token = unquote(parts.password or "")
    assert token.startswith("proxy.example:5432/?Action=connect&DBUser=chatflow_admin")
    assert "X-Amz-Signature=" in token
    assert "eu-west-1" in token


# --- SnapStart -------------------------------------------------------------------------------------------
def test_snapstart_hooks_close_connections_and_they_reopen_lazily(container: Container) -> None:
    import snapshot_restore_py

    from chatflow import snapstart

    assert snapstart.register(container) is True
    registered = [
        entry[0] if isinstance(entry, tuple) else entry
        for entry in snapshot_restore_py._before_snapshot_registry
    ]
    assert container.close_connections in registered

    writer = container.postgres.writer()
    with writer.connection() as conn:
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    client = container.redis.client
    assert client.ping() is True

    container.close_connections()  # what the runtime calls before the snapshot
    assert writer.closed
    assert container.postgres.writer() is not writer
    assert container.redis.client is not client

    with container.postgres.writer().connection() as conn:  # first request after the restore
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    assert container.redis.client.ping() is True


_SNAPSHOT_PROBE = """
import json
import snapshot_restore_py
from tests.support.lambdas import load_handler_module

container = load_handler_module({name!r}).container
# Open what a warm-up request would open, then run the hooks exactly as the runtime does.
writer = container.postgres.writer()
with writer.connection() as conn:
    conn.execute("SELECT 1")
client = container.redis.client
client.ping()
before = [f"{{f.__module__}}.{{f.__qualname__}}" for f, *_ in snapshot_restore_py.get_before_snapshot()]
for func, args, kwargs in snapshot_restore_py.get_before_snapshot():
    func(*args, **kwargs)
closed = writer.closed and container.redis.client is not client
for func, args, kwargs in snapshot_restore_py.get_after_restore():
    func(*args, **kwargs)
with container.postgres.writer().connection() as conn:
    reopened = conn.execute("SELECT 1 AS one").fetchone() == {{"one": 1}}
reopened = reopened and container.redis.client.ping() is True
print(json.dumps({{"before": before, "closed": closed, "reopened": reopened}}))
"""


@pytest.mark.parametrize("name", [fn.name for fn in catalog.FUNCTIONS if fn.snapstart])
def test_every_snapstart_handler_registers_the_hooks_at_init(name: str, chatflow_env: dict[str, str]) -> None:
    # A fresh interpreter: what the handler module itself does at init is what registers the
    # hooks, not some other test. Run from the repository root, so ``tests`` is importable.
    root = Path(__file__).resolve().parents[2]
    probe = _SNAPSHOT_PROBE.format(name=name)
    env = {**os.environ, **chatflow_env}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "chatflow.container.Container.close_connections" in result["before"]
    assert result["closed"] is True
    assert result["reopened"] is True
