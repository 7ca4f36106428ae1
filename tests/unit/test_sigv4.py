"""local_stack.sigv4 against botocore's own signer: what botocore signs verifies, and every way a
request can be unsigned, mis-signed or stale is refused with AWS's error code and message.

Sources of the expected values:
* the canonical request / string to sign / signing key: "Create a signed AWS API request"
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html) -- and botocore's
  ``SigV4Auth`` / ``SigV4QueryAuth``, which these tests use to sign;
* the 5-minute skew and the "Signature expired: ... is now earlier than ... (... - 5 min.)" /
  "Signature not yet current" messages, "Credential should be scoped to correct service: 'events'."
  (EventBridge, HTTP 400: github.com/paws-r/paws/issues/426), "The security token included in the
  request is invalid." (UnrecognizedClientException), "Missing Authentication Token",
  "Authorization header requires 'Credential' parameter. ..." (IncompleteSignatureException):
  AWS's answers as recorded in public bug reports (docs/local-stack.md, "SigV4").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local_stack.sigv4 import SignatureError, SignedRequest, SigV4Config, canonical_path, verify

CONFIG = SigV4Config()  # testing/testing, us-east-1
CONNECTIONS = "http://127.0.0.1:8002/local/@connections/BFHPhfCWIAMCKlQ%3D"


def sign(
    method: str = "POST",
    url: str = CONNECTIONS,
    body: bytes = b'{"type":"message"}',
    *,
    headers: dict[str, str] | None = None,
    service: str = "execute-api",
    region: str = "us-east-1",
    key: tuple[str, str] = ("testing", "testing"),
    token: str | None = None,
    presign: bool = False,
) -> SignedRequest:
    """A request as botocore sends it, seen as the server receives it (raw path and query)."""
    aws = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    credentials = Credentials(key[0], key[1], token)
    (SigV4QueryAuth if presign else SigV4Auth)(credentials, service, region).add_auth(aws)
    prepared = aws.prepare()
    parts = urlsplit(prepared.url)
    sent = list(prepared.headers.items())
    if not any(name.lower() == "host" for name, _ in sent):
        sent.append(("Host", parts.netloc))  # what urllib3 adds on the wire
    return SignedRequest(method, parts.path, parts.query, sent, body)


def _signed_at(request: SignedRequest) -> float:
    amz = (
        request.header("x-amz-date")
        or dict(p.split("=", 1) for p in request.raw_query.split("&") if p.startswith("X-Amz-Date="))[
            "X-Amz-Date"
        ]
    )
    return datetime.strptime(amz, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def refused(
    request: SignedRequest, service: str = "execute-api", *, now: float | None = None
) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        verify(request, service=service, config=CONFIG, now=now)
    return caught.value


@pytest.mark.parametrize(
    ("method", "url", "body", "service"),
    [
        ("POST", CONNECTIONS, b'{"type":"message"}', "execute-api"),  # PostToConnection
        ("GET", CONNECTIONS, b"", "execute-api"),  # GetConnection
        ("DELETE", CONNECTIONS, b"", "execute-api"),  # DeleteConnection
        ("POST", "http://127.0.0.1:8002/@connections/a%2Bb%3D", b"x", "execute-api"),  # no stage
        ("POST", "http://127.0.0.1:8003/", b'{"Entries":[]}', "events"),
        ("POST", "http://127.0.0.1:8003/", b'{"QueueName":"q"}', "sqs"),
        ("POST", "http://127.0.0.1:8003/2015-03-31/functions/worker/invocations", b"{}", "lambda"),
        # Query strings: unsorted, repeated keys, reserved and non-ASCII characters, empty values.
        ("GET", "http://h:1/a/b?z=1&a=2&a=1&q=a%20b%2Fc&e=&%C3%A9=%E2%9C%93", b"", "execute-api"),
        # Paths with dot segments, double slashes, encoded characters, a trailing slash.
        ("GET", "http://h:1/local/./x/../@connections//id%3D/", b"", "execute-api"),
        ("POST", "http://h:1/r%C3%A9sum%C3%A9/%7Etilde", "é".encode(), "execute-api"),
    ],
)
def test_what_botocore_signs_verifies(method: str, url: str, body: bytes, service: str) -> None:
    request = sign(method, url, body, service=service, headers={"Content-Type": "application/json"})
    assert verify(request, service=service, config=CONFIG) == "testing"


def test_header_values_are_trimmed_and_repeated_headers_joined_as_botocore_signs_them() -> None:
    request = sign(headers={"X-Custom": "  a   b  ", "X-Amz-Target": "AWSEvents.PutEvents"})
    assert verify(request, service="execute-api", config=CONFIG) == "testing"


def test_an_unsigned_extra_header_does_not_matter() -> None:
    request = sign()
    added = SignedRequest(
        request.method, request.raw_path, request.raw_query, [*request.headers, ("X-Late", "1")], request.body
    )
    assert verify(added, service="execute-api", config=CONFIG) == "testing"


def test_a_presigned_url_verifies_until_it_expires() -> None:
    request = sign("GET", CONNECTIONS, b"", presign=True)
    assert "X-Amz-Signature=" in request.raw_query
    assert verify(request, service="execute-api", config=CONFIG) == "testing"
    expired = refused(request, now=_signed_at(request) + 3601)  # botocore presigns for 3600 s
    assert (expired.code, expired.message) == ("AccessDeniedException", "Request has expired")


def test_canonical_path_matches_the_specification() -> None:
    # Non-S3 services: normalize, then URI-encode the (already encoded) path once more.
    assert canonical_path("/local/@connections/abc%3D") == "/local/%40connections/abc%253D"
    assert canonical_path("/a/./b/../c//d/") == "/a/c/d/"
    assert canonical_path("") == "/"
    assert canonical_path("/~user") == "/~user"


def _replace_header(request: SignedRequest, name: str, edit: Callable[[str], str]) -> SignedRequest:
    headers = [(k, edit(v) if k.lower() == name else v) for k, v in request.headers]
    return SignedRequest(request.method, request.raw_path, request.raw_query, headers, request.body)


def _drop_header(request: SignedRequest, name: str) -> SignedRequest:
    headers = [(k, v) for k, v in request.headers if k.lower() != name]
    return SignedRequest(request.method, request.raw_path, request.raw_query, headers, request.body)


def test_no_signature_is_missing_authentication_token() -> None:
    error = refused(_drop_header(sign(), "authorization"))
    assert (error.code, error.message) == (
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )


def test_a_non_sigv4_authorization_header_is_an_incomplete_signature() -> None:
    error = refused(_replace_header(sign(), "authorization", lambda _: "Bearer abc"))
    assert error.code == "IncompleteSignatureException"
    assert error.message == (
        "Authorization header requires 'Credential' parameter. Authorization header requires "
        "'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. "
        "Authorization=Bearer abc"
    )


def test_no_date_header_is_an_incomplete_signature() -> None:
    error = refused(_drop_header(sign(), "x-amz-date"))
    assert error.code == "IncompleteSignatureException"
    assert "requires existence of either a 'X-Amz-Date' or a 'Date' header" in error.message


@pytest.mark.parametrize(
    ("signed", "code"),
    [
        ({"key": ("someone-else", "testing")}, "UnrecognizedClientException"),
        ({"token": "FwoGZXIvYXdzE..."}, "UnrecognizedClientException"),  # temporary credentials
    ],
)
def test_unknown_credentials_are_an_unrecognized_client(signed: dict[str, object], code: str) -> None:
    error = refused(sign(**signed))  # type: ignore[arg-type]
    assert (error.code, error.message) == (code, "The security token included in the request is invalid.")


def test_a_wrong_secret_is_an_invalid_signature_naming_the_expected_canonical_request() -> None:
    error = refused(sign(key=("testing", "not-the-secret")))
    assert error.code == "InvalidSignatureException"
    assert error.message.startswith(
        "The request signature we calculated does not match the signature you provided."
    )
    assert (
        "The Canonical String for this request should have been\n'POST\n/local/%40connections/"
        in error.message
    )
    assert "The String-to-Sign should have been\n'AWS4-HMAC-SHA256\n" in error.message


def test_the_wrong_service_is_refused() -> None:
    error = refused(sign(service="events"), "execute-api")
    assert (error.code, error.message) == (
        "InvalidSignatureException",
        "Credential should be scoped to correct service: 'execute-api'. ",
    )
    error = refused(sign(service="execute-api"), "events")
    assert error.message == "Credential should be scoped to correct service: 'events'. "


def test_the_wrong_region_is_refused() -> None:
    error = refused(sign(region="eu-west-1"))
    assert (error.code, error.message) == (
        "InvalidSignatureException",
        "Credential should be scoped to a valid region, not 'eu-west-1'. ",
    )


def test_a_wrong_terminator_is_refused() -> None:
    request = _replace_header(sign(), "authorization", lambda v: v.replace("/aws4_request", "/aws5_request"))
    error = refused(request)
    assert error.message.startswith("Credential should be scoped with a valid terminator: 'aws4_request'")


def test_a_credential_date_other_than_the_request_date_is_refused() -> None:
    request = sign()
    amz = request.header("x-amz-date") or ""
    moved = _replace_header(request, "authorization", lambda v: v.replace(f"/{amz[:8]}/", "/20200101/"))
    error = refused(moved)
    assert error.message.startswith(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        f"'20200101' != '{amz[:8]}'"
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("host", "'Host' or ':authority' must be a 'SignedHeader'"),
        ("x-amz-date", "'X-Amz-Date' must be a 'SignedHeader'"),
    ],
)
def test_host_and_date_must_be_signed(header: str, message: str) -> None:
    def unsign(value: str) -> str:
        before, _, after = value.partition("SignedHeaders=")
        names, _, rest = after.partition(",")
        kept = ";".join(n for n in names.split(";") if n != header)
        return f"{before}SignedHeaders={kept},{rest}"

    error = refused(_replace_header(sign(), "authorization", unsign))
    assert error.code == "InvalidSignatureException"
    assert error.message.startswith(message)


def test_a_request_older_than_five_minutes_is_expired() -> None:
    request = sign()
    signed_at = _signed_at(request)
    assert verify(request, service="execute-api", config=CONFIG, now=signed_at + 299) == "testing"
    error = refused(request, now=signed_at + 301)
    assert error.code == "InvalidSignatureException"
    assert error.message.startswith(f"Signature expired: {request.header('x-amz-date')} is now earlier than ")
    assert error.message.endswith(" - 5 min.)")


def test_a_request_from_more_than_five_minutes_ahead_is_not_yet_current() -> None:
    request = sign()
    error = refused(request, now=_signed_at(request) - 301)
    assert error.message.startswith(
        f"Signature not yet current: {request.header('x-amz-date')} is still later than "
    )
    assert error.message.endswith(" + 5 min.)")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda r: SignedRequest(r.method, r.raw_path, r.raw_query, r.headers, b'{"type":"other"}'),
            id="body",
        ),
        pytest.param(
            lambda r: SignedRequest(r.method, r.raw_path + "x", r.raw_query, r.headers, r.body), id="path"
        ),
        pytest.param(lambda r: SignedRequest(r.method, r.raw_path, "a=1", r.headers, r.body), id="query"),
        pytest.param(lambda r: SignedRequest("PUT", r.raw_path, r.raw_query, r.headers, r.body), id="method"),
        pytest.param(
            lambda r: _replace_header(r, "content-type", lambda _: "text/plain"), id="signed-header"
        ),
        pytest.param(lambda r: _replace_header(r, "host", lambda _: "evil:1"), id="host"),
    ],
)
def test_anything_signed_that_changed_breaks_the_signature(
    tamper: Callable[[SignedRequest], SignedRequest],
) -> None:
    request = tamper(sign(headers={"Content-Type": "application/json"}))
    error = refused(request)
    assert error.code == "InvalidSignatureException"
    assert error.message.startswith("The request signature we calculated does not match")


def test_a_declared_payload_hash_must_be_the_body_s() -> None:
    request = sign(headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    error = refused(request)
    assert error.message == "The provided 'x-amz-content-sha256' header does not match what was computed."
