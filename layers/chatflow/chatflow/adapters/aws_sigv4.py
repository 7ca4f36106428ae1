"""AWS credentials and Signature Version 4 for the lean AWS HTTP clients.

One implementation shared by the @connections client (``chatflow/adapters/apigw_http.py``, the
fan-out path) and the EventBridge / SNS clients (``chatflow/adapters/aws_http.py``):

* **Credentials re-read on every call** (:func:`environment_credentials`): the
  ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` variables Lambda sets
  and replaces when it rotates the role's credentials (a few dict reads). Without them --
  SnapStart's container credentials (``AWS_CONTAINER_CREDENTIALS_FULL_URI``), a developer's
  profile or SSO -- botocore's credential chain, imported only then, which refreshes expiring
  credentials itself. A rotated secret simply selects a new signing key.
* **SigV4, header form** (:class:`SigV4Signer`): the signing key derived once per (secret, UTC
  day) for the signer's region and service and cached -- 1 HMAC per request instead of 5.
  :meth:`SigV4Signer.headers` is the fan-out's fast path (a body-only request signing ``host``,
  ``x-amz-date`` and ``x-amz-security-token``); :meth:`SigV4Signer.sign` signs any extra headers
  too (``content-type``, ``x-amz-target``). ``tests/unit/test_apigw_http.py`` and
  ``tests/unit/test_aws_http.py`` check both against botocore's ``SigV4Auth`` for the same
  request and instant and against the local stack's verifier (``local_stack/sigv4.py``).

Standard library only (no botocore on the cold path): importing this module costs what
``hashlib``/``hmac``/``urllib.parse`` cost, which the clients import anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

__all__ = [
    "AwsCredentials",
    "CredentialSource",
    "NoCredentialsError",
    "SigV4Signer",
    "environment_credentials",
]

_ALGORITHM = "AWS4-HMAC-SHA256"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    access_key: str
    secret_key: str
    token: str | None = None


CredentialSource = Callable[[], AwsCredentials]


class NoCredentialsError(RuntimeError):
    """Neither the environment nor botocore's chain (profile, SSO, container) has credentials."""


def environment_credentials(environ: Mapping[str, str] = os.environ) -> CredentialSource:
    """This execution environment's credentials, resolved on EVERY call of the returned source.

    Keys in ``environ`` win (Lambda's, replaced on rotation; SnapStart restores a snapshot taken
    with other ones, so nothing may be cached). Otherwise botocore's chain, built once on first
    need (imported only then) and asked each time: ``get_frozen_credentials`` refreshes expiring
    container credentials. :class:`NoCredentialsError` when there are none at all.
    """
    chain: Any = None
    lock = threading.Lock()

    def resolve() -> AwsCredentials:
        nonlocal chain
        key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            return AwsCredentials(key, secret, environ.get("AWS_SESSION_TOKEN") or None)
        if chain is None:
            with lock:
                if chain is None:
                    import botocore.session

                    found = botocore.session.get_session().get_credentials()
                    if found is None:
                        raise NoCredentialsError("no AWS credentials (environment, profile or container)")
                    chain = found
        frozen = chain.get_frozen_credentials()
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token or None)

    return resolve


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _amz_date(now: float | None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


class SigV4Signer:
    """AWS Signature Version 4 (Authorization header) for requests without a query string.

    Thread-safe: the cached signing key is replaced by one tuple assignment.
    """

    def __init__(self, service: str, region: str, credentials: CredentialSource) -> None:
        self.service = service
        self.region = region
        self._credentials = credentials
        #: (secret, day, key): a rotated secret or a new UTC day derives a new key.
        self._key: tuple[str, str, bytes] | None = None

    def signing_key(self, secret: str, day: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == secret and cached[1] == day:
            return cached[2]
        key = _hmac(f"AWS4{secret}".encode(), day)
        for part in (self.region, self.service, "aws4_request"):
            key = _hmac(key, part)
        self._key = (secret, day, key)
        return key

    def headers(
        self, method: str, host: str, path: str, body: bytes, now: float | None = None
    ) -> dict[str, str]:
        """Host, X-Amz-Date, X-Amz-Security-Token (temporary credentials) and Authorization for a
        request whose only signed headers are those (the @connections fast path: no sorting).

        ``path`` is the request path as sent (already percent-encoded); the canonical path
        encodes it once more, as every AWS service but S3 expects.
        """
        creds = self._credentials()
        amz_date = _amz_date(now)
        headers = {"Host": host, "X-Amz-Date": amz_date}
        if creds.token:
            canonical = f"host:{host}\nx-amz-date:{amz_date}\nx-amz-security-token:{creds.token}\n"
            signed = "host;x-amz-date;x-amz-security-token"
            headers["X-Amz-Security-Token"] = creds.token
        else:
            canonical = f"host:{host}\nx-amz-date:{amz_date}\n"
            signed = "host;x-amz-date"
        headers["Authorization"] = self._authorization(
            creds, amz_date, method=method, path=path, canonical_headers=canonical, signed=signed, body=body
        )
        return headers

    def sign(
        self,
        host: str,
        headers: Mapping[str, str],
        body: bytes,
        now: float | None = None,
        *,
        method: str = "POST",
        path: str = "/",
    ) -> dict[str, str]:
        """``headers`` plus Host, X-Amz-Date, X-Amz-Security-Token (temporary credentials) and
        Authorization, every one of them signed. Header names in ``headers`` are as sent."""
        creds = self._credentials()
        amz_date = _amz_date(now)
        out = dict(headers)
        out["Host"] = host
        out["X-Amz-Date"] = amz_date
        if creds.token:
            out["X-Amz-Security-Token"] = creds.token
        lowered = sorted((name.lower(), " ".join(value.split())) for name, value in out.items())
        canonical = "".join(f"{name}:{value}\n" for name, value in lowered)
        signed = ";".join(name for name, _ in lowered)
        out["Authorization"] = self._authorization(
            creds, amz_date, method=method, path=path, canonical_headers=canonical, signed=signed, body=body
        )
        return out

    def _authorization(
        self,
        creds: AwsCredentials,
        amz_date: str,
        *,
        method: str,
        path: str,
        canonical_headers: str,
        signed: str,
        body: bytes,
    ) -> str:
        day = amz_date[:8]
        payload = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
        canonical = f"{method}\n{quote(path, safe='/~')}\n\n{canonical_headers}\n{signed}\n{payload}"
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = f"{_ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = self.signing_key(creds.secret_key, day)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return (
            f"{_ALGORITHM} Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
