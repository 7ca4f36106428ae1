"""The lean @connections client's SigV4 (chatflow/adapters/aws_sigv4.py, the fast ``headers`` path)
against botocore's signer, and its credential source.

Every signature is compared with what botocore's ``SigV4Auth`` produces for the same request at
the same instant (botocore signs first; its ``X-Amz-Date`` is the instant ours uses), and checked
by the local stack's verifier (local_stack.sigv4), which AWS's answers were modelled on.
"""

from __future__ import annotations

import calendar
import time
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chatflow.adapters.apigw_http import SERVICE, ConnectionsClient
from chatflow.adapters.aws_sigv4 import AwsCredentials, SigV4Signer, environment_credentials
from local_stack.sigv4 import SignedRequest, SigV4Config, verify

ENDPOINT = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"


def _botocore_headers(
    method: str, url: str, body: bytes, creds: AwsCredentials, region: str
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(Credentials(creds.access_key, creds.secret_key, creds.token), "execute-api", region).add_auth(
        request
    )
    return dict(request.headers.items())


def _epoch(amz_date: str) -> float:
    return calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))


@pytest.mark.parametrize(
    ("method", "connection_id", "body", "token"),
    [
        ("POST", "BFHPhfCWIAMCKlQ=", b'{"type":"message","body":"h\xc3\xa9llo"}', None),
        ("POST", "L0SM9cOFvHcCIhw=", b"x" * 4096, "FwoGZXIvYXdzEJr//////////wEaDOLnH+u/token=="),
        ("DELETE", "a/b+c=", b"", "session-token"),
        ("POST", "plain", b"", None),
    ],
)
def test_signature_matches_botocore(method: str, connection_id: str, body: bytes, token: str | None) -> None:
    creds = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    client = ConnectionsClient(ENDPOINT, region="eu-west-1", credentials=lambda: creds)
    path = client.path_of(connection_id)
    url = f"https://abc123.execute-api.eu-west-1.amazonaws.com{path}"

    expected = _botocore_headers(method, url, body, creds, "eu-west-1")
    ours = client.signer.headers(
        method, "abc123.execute-api.eu-west-1.amazonaws.com", path, body, now=_epoch(expected["X-Amz-Date"])
    )

    assert ours["Authorization"] == expected["Authorization"]
    assert ours["X-Amz-Date"] == expected["X-Amz-Date"]
    assert ours.get("X-Amz-Security-Token") == expected.get("X-Amz-Security-Token")


def test_path_is_what_botocore_sends_for_the_connection_id() -> None:
    """botocore serializes ``/@connections/{ConnectionId}`` with the id percent-encoded."""
    client = ConnectionsClient(ENDPOINT, region="eu-west-1", credentials=lambda: AwsCredentials("a", "b"))
    assert client.path_of("BFHPhfCWIAMCKlQ=") == "/prod/@connections/BFHPhfCWIAMCKlQ%3D"
    assert client.path_of("a/b") == "/prod/@connections/a%2Fb"


def test_the_local_verifier_accepts_it_and_refuses_another_secret() -> None:
    creds = AwsCredentials("testing", "testing")
    signer = SigV4Signer(SERVICE, "us-east-1", lambda: creds)
    path = "/local/@connections/BFHPhfCWIAMCKlQ%3D"
    headers = signer.headers("POST", "127.0.0.1:8002", path, b"{}")
    request = SignedRequest("POST", path, "", list(headers.items()), b"{}")
    assert verify(request, service="execute-api", config=SigV4Config()) == "testing"

    wrong = SigV4Signer(SERVICE, "us-east-1", lambda: AwsCredentials("testing", "other"))
    bad = wrong.headers("POST", "127.0.0.1:8002", path, b"{}")
    with pytest.raises(Exception, match="signature we calculated does not match"):
        verify(
            SignedRequest("POST", path, "", list(bad.items()), b"{}"),
            service="execute-api",
            config=SigV4Config(),
        )


def test_signing_key_is_cached_per_secret_and_day_and_follows_a_rotation() -> None:
    current = {"creds": AwsCredentials("AKID1", "secret-1")}
    signer = SigV4Signer(SERVICE, "us-east-1", lambda: current["creds"])
    signer.headers("POST", "h", "/p", b"x", now=1_700_000_000)
    first = signer.signing_key("secret-1", "20231114")
    assert signer.signing_key("secret-1", "20231114") is first  # cached: no re-derivation

    current["creds"] = AwsCredentials("AKID2", "secret-2", "tok")
    headers = signer.headers("POST", "h", "/p", b"x", now=1_700_000_000)
    assert "Credential=AKID2/" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "tok"
    assert signer.signing_key("secret-2", "20231114") != first
    # The key of the next day is derived again.
    assert signer.signing_key("secret-2", "20231115") != signer.signing_key("secret-2", "20231114")


def test_environment_credentials_are_read_again_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda replaces the environment's credentials when it rotates them (and SnapStart restores
    a snapshot taken with other ones): a source resolved at init must see the new ones."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID-OLD")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "old-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "old-token")
    source = environment_credentials()
    assert source() == AwsCredentials("AKID-OLD", "old-secret", "old-token")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID-NEW")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "new-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    assert source() == AwsCredentials("AKID-NEW", "new-secret", None)


def test_without_keys_in_the_environment_botocore_chain_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """SnapStart functions get container credentials, not keys in the environment: botocore's
    chain resolves (and refreshes) them. Here the chain finds the shared credentials file."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".ini") as shared:
        shared.write("[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n")
        shared.flush()
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", shared.name)
        monkeypatch.setenv("AWS_CONFIG_FILE", shared.name + ".none")
        assert environment_credentials()() == AwsCredentials("AKIDFILE", "file-secret", None)


def test_endpoint_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="not an http"):
        ConnectionsClient("wss://x/prod", region="us-east-1")
    client = ConnectionsClient("http://127.0.0.1:8002/local/", region="us-east-1")
    assert urlsplit(client.endpoint_url).port == 8002
    assert client.path_of("c") == "/local/@connections/c"


def test_the_shared_endpoint_parse_keeps_host_port_and_path() -> None:
    """chatflow/adapters/aws_endpoint.py: what both lean clients connect to and sign as Host."""
    from chatflow.adapters.aws_endpoint import Endpoint

    tls = Endpoint.parse("https://abc.execute-api.eu-west-1.amazonaws.com/prod/")
    assert (tls.https, tls.port, tls.host, tls.path) == (
        True,
        443,
        "abc.execute-api.eu-west-1.amazonaws.com",
        "/prod/",
    )
    local = Endpoint.parse("http://user@127.0.0.1:8002")
    assert (local.https, local.hostname, local.port, local.host, local.path) == (
        False,
        "127.0.0.1",
        8002,
        "127.0.0.1:8002",
        "",
    )
    with pytest.raises(ValueError, match="not an http"):
        Endpoint.parse("wss://x/prod")
