"""Clients of the local AWS endpoints for tests: boto3 clients with the local key pair the endpoints
accept (local_stack.sigv4.DEFAULT_KEY_PAIR), and signed raw HTTP requests for tests that look at
the wire (status, headers, body), signed exactly as botocore signs (SigV4Auth)."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from local_stack.sigv4 import DEFAULT_KEY_PAIR

REGION = "us-east-1"


def local_client(service: str, endpoint_url: str, **overrides: Any) -> Any:
    """A boto3 client of ``service`` at ``endpoint_url``, signing with the local key pair, one try
    per call (tests look at the first answer, not at botocore's retries)."""
    kwargs: dict[str, Any] = {
        "region_name": REGION,
        "endpoint_url": endpoint_url,
        "aws_access_key_id": DEFAULT_KEY_PAIR[0],
        "aws_secret_access_key": DEFAULT_KEY_PAIR[1],
        "config": Config(
            retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=30
        ),
        **overrides,
    }
    make: Any = boto3.client  # typed per literal service name; here the name is a variable
    return make(service, **kwargs)


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
