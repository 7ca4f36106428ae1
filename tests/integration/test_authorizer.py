"""The authorizer function: WebSocket $connect (IAM policy) and HTTP API (simple responses).

Events are built as API Gateway sends them and checked against Powertools' parser models.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    APIGatewayWebSocketConnectEventModel,
)
from aws_lambda_powertools.utilities.parser.models.apigw_websocket import (
    APIGatewayWebSocketConnectEventRequestContext,
)
from aws_lambda_powertools.utilities.parser.models.apigwv2 import ApiGatewayAuthorizerRequestV2
from cryptography.hazmat.primitives.asymmetric import ec

from chatflow.auth.tokens import TokenSigner, signer_from_settings
from chatflow.domain.identity import Identity
from tests.support.apigw import (
    http_authorizer_event,
    http_event,
    lambda_context,
    ws_authorizer_event,
    ws_connect_event,
)
from tests.support.lambdas import load_handler, reset_handlers

Handler = Any


@pytest.fixture
def authorizer(chatflow_env: dict[str, str]) -> Handler:
    reset_handlers()
    return load_handler("authorizer")


def get_signer() -> TokenSigner:
    """The HTTP API's signer with this run's key (as its container builds it)."""
    from chatflow.settings import get_settings

    settings = get_settings()
    assert settings.jwt_private_key is not None
    return signer_from_settings(settings, settings.jwt_private_key)


def _token(role: str = "user") -> tuple[str, uuid.UUID]:
    user_id = uuid.uuid4()
    return get_signer().issue(user_id=user_id, handle="ada", role=role).token, user_id  # type: ignore[arg-type]


def _http_auth(handler: Handler, token: str | None) -> dict[str, Any]:
    event = http_authorizer_event(
        http_event("GET", "/users/me", token=token), ("$request.header.Authorization",)
    )
    ApiGatewayAuthorizerRequestV2.model_validate(event)
    result: dict[str, Any] = handler(event, lambda_context("authorizer"))
    return result


def _ws_auth(handler: Handler, **kwargs: Any) -> dict[str, Any]:
    connect = ws_connect_event(**kwargs)
    event = ws_authorizer_event(connect)
    APIGatewayWebSocketConnectEventRequestContext.model_validate(event["requestContext"])
    assert event["methodArn"].endswith("/$connect")
    result: dict[str, Any] = handler(event, lambda_context("authorizer"))
    return result


def test_event_builders_match_powertools_models() -> None:
    APIGatewayProxyEventV2Model.model_validate(http_event("POST", "/rooms", json={"name": "x"}, token="t"))
    connect = ws_connect_event(token="t", authorizer_context={"userId": str(uuid.uuid4())})
    APIGatewayWebSocketConnectEventModel.model_validate(connect)


def test_http_allows_a_valid_token_with_identity_context(authorizer: Handler) -> None:
    token, user_id = _token("admin")
    result = _http_auth(authorizer, token)
    assert result["isAuthorized"] is True
    identity = Identity.from_context(result["context"])
    assert identity.user_id == user_id
    assert identity.role == "admin"


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c"])
def test_http_denies_missing_or_malformed(authorizer: Handler, token: str | None) -> None:
    assert _http_auth(authorizer, token) == {"isAuthorized": False}


def _forge(**header_and_claims: Any) -> str:
    signer = get_signer()
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "iss": signer.issuer,
        "aud": signer.audience,
        "iat": now,
        "exp": now + 60,
        "jti": "x",
        "handle": "mallory",
        "role": "admin",
    }
    claims.update(header_and_claims.pop("claims", {}))
    key = header_and_claims.pop("key", signer._key)
    algorithm = header_and_claims.pop("algorithm", "ES256")
    headers = {"kid": signer.kid, "typ": "at+jwt", **header_and_claims}
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def test_http_denies_expired_forged_wrong_audience_and_alg_none(
    authorizer: Handler, chatflow_env: dict[str, str]
) -> None:
    past = int(time.time()) - 7200
    expired = _forge(claims={"iat": past, "exp": past + 60})
    forged = _forge(key=ec.generate_private_key(ec.SECP256R1()))
    wrong_aud = _forge(claims={"aud": "another-app"})
    wrong_iss = _forge(claims={"iss": "https://evil.example"})
    unsigned = jwt.encode({"sub": str(uuid.uuid4()), "role": "admin"}, None, algorithm="none")  # type: ignore[arg-type]
    # HS256 keyed with the public key PEM (algorithm confusion). pyjwt refuses to *sign* HMAC with a
    # PEM, so build it by hand.
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    head = b64({"alg": "HS256", "typ": "at+jwt", "kid": get_signer().kid})
    body = b64(
        {
            "sub": str(uuid.uuid4()),
            "iss": "chatflow",
            "aud": "chatflow-clients",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
            "jti": "x",
            "handle": "m",
            "role": "admin",
        }
    )
    mac = hmac.new(
        chatflow_env["JWT_PUBLIC_KEYS"].encode(), f"{head}.{body}".encode(), hashlib.sha256
    ).digest()
    confused = f"{head}.{body}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    for token in (expired, forged, wrong_aud, wrong_iss, unsigned, confused):
        assert _http_auth(authorizer, token) == {"isAuthorized": False}
        policy = _ws_auth(authorizer, token=token)
        assert policy["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def test_websocket_query_token_allows_with_policy_and_context(authorizer: Handler) -> None:
    token, user_id = _token()
    policy = _ws_auth(authorizer, token=token)
    assert policy["principalId"] == str(user_id)
    statement = policy["policyDocument"]["Statement"][0]
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": statement["Resource"],
    }
    assert statement["Resource"].startswith("arn:aws:execute-api:")
    assert Identity.from_context(policy["context"]).user_id == user_id
    # API Gateway only accepts flat string/number/boolean context values.
    assert all(isinstance(v, str | int | bool) for v in policy["context"].values())


def test_websocket_subprotocol_token(authorizer: Handler) -> None:
    token, user_id = _token()
    policy = _ws_auth(authorizer, protocols=f"chatflow.v1, bearer.{token}")
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert policy["principalId"] == str(user_id)


def test_websocket_without_token_is_denied(authorizer: Handler) -> None:
    policy = _ws_auth(authorizer, protocols="chatflow.v1")
    assert policy["principalId"] == "anonymous"
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert "context" not in policy


def test_authorizer_logs_decisions_as_json_never_tokens(
    authorizer: Handler, capsys: pytest.CaptureFixture[str]
) -> None:
    token, _ = _token()
    capsys.readouterr()
    _http_auth(authorizer, token)
    _ws_auth(authorizer, token=token)
    _http_auth(authorizer, "bogus-token-value")
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    decisions = [line for line in lines if line["message"] == "authorizer decision"]
    expected = [("http", True), ("websocket", True), ("http", False)]
    assert [(d["api"], d["allowed"]) for d in decisions] == expected
    assert all(d["level"] == "INFO" and d["service"] and "timestamp" in d for d in decisions)
    assert any(line["message"] == "token refused" for line in lines)
    assert token not in out
    assert "bogus-token-value" not in out


def test_authorizer_imports_no_io_clients() -> None:
    """Cold-start contract: no boto3, psycopg, redis, pydantic or X-Ray SDK in the authorizer."""
    import subprocess
    import sys

    from infra.catalog import function

    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('h', {str(function('authorizer').module_path)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "heavy = ('boto3', 'botocore.session', 'psycopg', 'redis', 'pydantic', 'aws_xray_sdk',"
        " 'aws_lambda_powertools')\n"
        "bad = [n for n in heavy if n in sys.modules]\n"
        "print('HEAVY=' + ','.join(bad))\n"
    )
    env = {"JWT_PUBLIC_KEYS": "", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    lines = result.stdout.splitlines()
    assert "HEAVY=" in lines, lines
    # With no keys configured, the misconfiguration is logged at cold start.
    assert any("no JWT public keys configured" in line for line in lines)
