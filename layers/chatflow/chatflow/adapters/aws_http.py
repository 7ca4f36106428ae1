"""Lean clients for AWS services: JSON protocol (EventBridge ``PutEvents``) and query protocol
(SNS ``Publish``).

Why not botocore: a botocore client costs ~0.3x of a whole naive cold start here before its
first request -- ``import botocore.session`` (its docs, waiters and urllib3 come along) and
``create_client`` (the service model, endpoint rule set and partitions JSON read from disk and
the endpoint resolved through the rule engine) -- docs/performance.md, "Cold start". A JSON-
protocol call is one signed ``POST /`` with ``X-Amz-Target: <prefix>.<Operation>`` and a JSON
body (a query-protocol call: a form-encoded ``Action=<Operation>&...`` body and an XML answer),
so this module does exactly that with the standard library:

* **SigV4** and **credentials re-read on every call**: the shared
  ``chatflow/adapters/aws_sigv4.py`` (the one signer and credential source of the lean clients;
  :meth:`~chatflow.adapters.aws_sigv4.SigV4Signer.sign` signs ``content-type``, ``host``,
  ``x-amz-date``, ``x-amz-target`` and, with temporary credentials, ``x-amz-security-token``;
  the signing key is cached per (secret, day)). Credentials come from ``environ`` (Lambda's,
  replaced on rotation), else botocore's chain, imported only then; none at all is an
  :class:`AwsConnectionError`. The integration tests call the local stack's endpoints, which
  verify SigV4 like AWS (``local_stack/sigv4.py``).
* **One keep-alive connection** (``http.client``, opened by the shared
  ``chatflow/adapters/aws_endpoint.py``), reused across calls and invocations, opened on the first
  call (never at init: no socket in a SnapStart snapshot). A reused connection the
  server closed while idle fails before any answer; that call is sent once more on a fresh
  connection (nothing reached the service). Other failures are NOT retried here -- callers own
  their retry policy (EventBridge's is per entry, which botocore's cannot be).

Errors: :class:`AwsServiceError` (the service answered with an error: ``code`` from
``__type`` / ``x-amzn-ErrorType``, ``status``) and :class:`AwsConnectionError` (no answer:
refused, DNS, TLS, timeout, reset). Not covered, on purpose: pagination, waiters, nested
query-protocol results (only a flat one), request compression, endpoint discovery.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from chatflow.adapters.aws_endpoint import IDLE_CLOSED, Endpoint, StaleConnection
from chatflow.adapters.aws_sigv4 import (
    AwsCredentials,
    CredentialSource,
    NoCredentialsError,
    SigV4Signer,
    environment_credentials,
)

_T = TypeVar("_T")

__all__ = [
    "AwsConnectionError",
    "AwsCredentials",
    "AwsJsonClient",
    "AwsQueryClient",
    "AwsServiceError",
    "CallTracer",
    "CredentialSource",
]


class CallTracer(Protocol):
    """Records each call as an X-Ray subsegment (``chatflow.observability.XRayTracer``)."""

    def subsegment(
        self, name: str, *, namespace: str | None = None, extra: dict[str, Any] | None = None
    ) -> AbstractContextManager[dict[str, Any]]: ...


class AwsServiceError(Exception):
    """The service answered with an error (4xx/5xx)."""

    def __init__(self, operation: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{operation}: {status} {code}: {message}")
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message


class AwsConnectionError(OSError):
    """No (complete) answer: connection refused, DNS, TLS, timeout, reset, unreadable answer."""


class _AwsHttpClient:
    """One service endpoint: SigV4 signing, one keep-alive connection, the X-Ray subsegment per
    call. Thread-safe (calls take turns on the one connection; the functions make one call at a
    time)."""

    def __init__(
        self,
        *,
        signing_name: str,
        region: str,
        endpoint_url: str | None = None,
        credentials: CredentialSource | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 5.0,
        tracer: CallTracer | None = None,
        service_id: str = "",
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        # As botocore resolves it: the argument, else AWS_ENDPOINT_URL_<SERVICE ID> (e.g. _SNS,
        # _EVENTBRIDGE), else AWS_ENDPOINT_URL, else the service's regional endpoint.
        url = (
            endpoint_url
            or (service_id and environ.get(f"AWS_ENDPOINT_URL_{service_id.upper().replace(' ', '_')}"))
            or environ.get("AWS_ENDPOINT_URL")
            or f"https://{signing_name}.{region}.amazonaws.com"
        )
        self._endpoint = Endpoint.parse(url)
        self.endpoint_url = url
        self._host = self._endpoint.host
        self._path = self._endpoint.path or "/"
        self._signer = SigV4Signer(signing_name, region, credentials or environment_credentials())
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self._tracer = tracer
        self._region = region
        self._signing_name = signing_name

    def _traced(self, operation: str, call: Callable[[], _T]) -> _T:
        """``call()``, recorded as a subsegment named after the service when there is a tracer, as
        the X-Ray SDK's botocore patch records AWS calls (namespace ``aws``; 4xx an error, 429 or
        a throttling code a throttle, 5xx a fault)."""
        if self._tracer is None:
            return call()
        aws = {"operation": operation, "region": self._region}
        with self._tracer.subsegment(self._signing_name, namespace="aws", extra={"aws": aws}) as doc:
            try:
                answer = call()
            except AwsServiceError as exc:
                doc["http"] = {"response": {"status": exc.status}}
                if exc.status == 429 or "Throttl" in exc.code:
                    doc["throttle"] = True
                if exc.status < 500:
                    doc["error"] = True
                raise
            doc["http"] = {"response": {"status": 200}}
            return answer

    def _send(self, operation: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        with self._lock:
            return self._exchange(operation, headers, body)

    def _exchange(self, operation: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        for _ in range(2):  # the second time only after a stale keep-alive connection
            reused = self._conn is not None
            conn = self._conn or self._open()
            self._conn = conn
            try:
                try:
                    signed = self._signer.sign(self._host, headers, body, path=self._path)
                except NoCredentialsError as exc:
                    raise AwsConnectionError(str(exc)) from exc
                signed["Content-Length"] = str(len(body))
                try:
                    conn.request("POST", self._path, body, signed)
                    response = conn.getresponse()
                except IDLE_CLOSED:
                    if reused:
                        raise StaleConnection from None
                    raise
                payload = response.read()
                if response.will_close:
                    self.close()
                return response.status, response.getheader("x-amzn-ErrorType") or "", payload
            except StaleConnection:
                self.close()
                continue
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                where = f"{self._endpoint.hostname}:{self._endpoint.port}"
                raise AwsConnectionError(f"{operation} to {where}: {exc!r}") from exc
        raise AwsConnectionError(f"{operation}: the endpoint closed two connections without answering")

    def _open(self) -> http.client.HTTPConnection:
        endpoint = self._endpoint
        try:
            if endpoint.https and self._tls is None:
                self._tls = ssl.create_default_context()  # on first use: not on the cold path
            return endpoint.connect(
                self._tls, connect_timeout_s=self._connect_timeout_s, read_timeout_s=self._read_timeout_s
            )
        except OSError as exc:
            raise AwsConnectionError(f"connecting to {endpoint.hostname}:{endpoint.port}: {exc!r}") from exc

    def close(self) -> None:
        """Close the kept connection (SnapStart's before-snapshot hook, tests); reopened on use."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class AwsJsonClient(_AwsHttpClient):
    """An AWS JSON-protocol service: ``call("PutEvents", {...})`` -> the decoded answer.

    ``target_prefix`` is the service's ``X-Amz-Target`` prefix (``AWSEvents``, ``AmazonSQS``),
    ``json_version`` its protocol version (``1.1`` EventBridge, ``1.0`` SQS), ``signing_name``
    its SigV4 service name (``events``, ``sqs``).
    """

    def __init__(self, *, target_prefix: str, json_version: str, **options: Any) -> None:
        super().__init__(**options)
        self.target_prefix = target_prefix
        self._content_type = f"application/x-amz-json-{json_version}"

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The decoded answer of ``operation``; AwsServiceError / AwsConnectionError otherwise."""
        return self._traced(operation, lambda: self._call(operation, params))

    def _call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        body = json.dumps(params, separators=(",", ":")).encode()
        headers = {"Content-Type": self._content_type, "X-Amz-Target": f"{self.target_prefix}.{operation}"}
        status, error_type, payload = self._send(operation, headers, body)
        try:
            answer = json.loads(payload) if payload else {}
        except ValueError:
            answer = None
        if 200 <= status < 300:
            if not isinstance(answer, dict):
                raise AwsConnectionError(f"{operation}: answer is not a JSON object: {payload[:200]!r}")
            return answer
        fields = answer if isinstance(answer, dict) else {}
        code = str(fields.get("__type") or error_type or f"Http{status}")
        # "com.amazonaws.events#ThrottlingException" / "ThrottlingException:http://internal/"
        code = code.rpartition("#")[2].partition(":")[0]
        message = fields.get("message") or fields.get("Message") or payload[:200].decode(errors="replace")
        message = str(message)
        raise AwsServiceError(operation, status, code, message)


class AwsQueryClient(_AwsHttpClient):
    """An AWS query-protocol service (SNS): ``call("Publish", {...})`` -> the ``<OperationResult>``
    element's children as text (``{"MessageId": "..."}``). ``params`` are already flattened
    (``MessageAttributes.entry.1.Name``); ``api_version`` is the service's (SNS: 2010-03-31)."""

    def __init__(self, *, api_version: str, **options: Any) -> None:
        super().__init__(**options)
        self.api_version = api_version

    def call(self, operation: str, params: Mapping[str, str]) -> dict[str, str]:
        """The result fields of ``operation``; AwsServiceError / AwsConnectionError otherwise."""
        return self._traced(operation, lambda: self._call(operation, params))

    def _call(self, operation: str, params: Mapping[str, str]) -> dict[str, str]:
        from urllib.parse import urlencode
        from xml.etree import ElementTree

        body = urlencode({"Action": operation, "Version": self.api_version, **params}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        status, error_type, payload = self._send(operation, headers, body)
        try:
            # The service's own answer over TLS (botocore parses it with ElementTree too).
            root = ElementTree.fromstring(payload) if payload else None  # noqa: S314
        except ElementTree.ParseError:
            root = None
        if 200 <= status < 300:
            result = None if root is None else _child(root, f"{operation}Result")
            if result is None:
                raise AwsConnectionError(f"{operation}: no {operation}Result in {payload[:200]!r}")
            return {_local(e.tag): e.text or "" for e in result}
        error = None if root is None else _child(root, "Error")
        fields = {} if error is None else {_local(e.tag): e.text or "" for e in error}
        code = fields.get("Code") or error_type.partition(":")[0] or f"Http{status}"
        message = fields.get("Message") or payload[:200].decode(errors="replace")
        raise AwsServiceError(operation, status, code, message)


def _local(tag: str) -> str:
    """``{http://sns.amazonaws.com/doc/2010-03-31/}MessageId`` -> ``MessageId``."""
    return tag.rpartition("}")[2]


def _child(root: Any, name: str) -> Any:
    """The first element named ``name`` (any namespace) at or below ``root``."""
    for element in root.iter():
        if _local(element.tag) == name:
            return element
    return None
