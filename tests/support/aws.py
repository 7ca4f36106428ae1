"""Signed raw HTTP requests to the local AWS endpoints, for tests that look at the wire (status,
headers, body) rather than through a boto3 client: signed exactly as botocore signs (SigV4Auth),
with the local key pair the endpoints accept (local_stack.sigv4.DEFAULT_KEY_PAIR)."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local_stack.sigv4 import DEFAULT_KEY_PAIR

REGION = "us-east-1"


def signed_request(
    method: str,
    url: str,
    *,
    service: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    key_pair: tuple[str, str] = DEFAULT_KEY_PAIR,
    region: str = REGION,
) -> urllib.request.Request:
    """A urllib request carrying botocore's SigV4 signature for ``service``."""
    aws = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials(*key_pair), service, region).add_auth(aws)
    prepared = aws.prepare()
    return urllib.request.Request(
        prepared.url, data=body or None, method=method, headers=dict(prepared.headers.items())
    )
