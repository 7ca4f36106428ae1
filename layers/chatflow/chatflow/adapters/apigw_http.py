"""A lean HTTP client for the API Gateway Management API (``@connections``): the fan-out path.

botocore spends ~0.8 ms of CPU per ``post_to_connection`` (request serialization through the
service model, its event hooks, a fresh SigV4 signing key per request, urllib3); fan-out CPU is
most of a chat backend's Lambda bill. This client does only what a PostToConnection needs:

* **SigV4** for service ``execute-api`` and **credentials re-read per request** (rotation and
  SnapStart's container credentials work): the shared ``chatflow/adapters/aws_sigv4.py``
  (:class:`~chatflow.adapters.aws_sigv4.SigV4Signer`'s fast ``headers`` path: the canonical
  request of a body-only POST/DELETE, the signing key cached per (secret, day) -- 1 HMAC per
  request instead of 5). ``tests/unit/test_apigw_http.py`` checks every signature against
  botocore's ``SigV4Auth`` for the same request and instant.
* **Keep-alive connections in a pool** (:class:`ConnectionsClient`): one ``http.client``
  connection per fan-out worker, reused across posts and invocations (opened, and "closed while
  idle" recognised, by the shared ``chatflow/adapters/aws_endpoint.py``). A reused connection the
  server closed while idle fails before any response byte arrives; that request is sent again
  once on a fresh connection (the server never processed it). Anything else (a timeout after the
  request went out, a reset mid-response) is NOT re-sent here: the caller decides, and the
  notifier counts it as failed rather than risk a second delivery.

It speaks HTTP/1.1 to ``https://{api}.execute-api.{region}.amazonaws.com/{stage}`` (TLS, the
system's CA bundle) or to the local stack's ``http://127.0.0.1:8002/{stage}``, which verifies
SigV4 like AWS (local_stack/sigv4.py).
"""

from __future__ import annotations

import http.client
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import quote

from chatflow.adapters.aws_endpoint import IDLE_CLOSED, Endpoint, StaleConnection
from chatflow.adapters.aws_sigv4 import (
    AwsCredentials,
    CredentialSource,
    SigV4Signer,
    environment_credentials,
)

__all__ = [
    "SERVICE",
    "Answer",
    "AwsCredentials",
    "ConnectionsClient",
    "CredentialSource",
    "NoAnswer",
    "NotSent",
]

SERVICE = "execute-api"


# --- HTTP -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What the endpoint answered: status, AWS's error type (``x-amzn-ErrorType``) and body."""

    status: int
    error_type: str = ""
    body: bytes = b""


class NotSent(OSError):
    """No connection could be opened: the request never left, sending it again is safe."""


class NoAnswer(OSError):
    """The request went out but no (complete) answer came back (timeout, reset): it MAY have been
    processed, so sending it again could deliver it twice."""


class ConnectionsClient:
    """POST / DELETE ``@connections/{id}`` over pooled keep-alive HTTP/1.1 connections.

    Thread-safe: each request borrows an idle connection from the pool (LIFO, so the warmest one)
    or opens one; at most ``pool_size`` idle connections are kept.
    """

    def __init__(
        self,
        endpoint_url: str,
        *,
        region: str,
        credentials: CredentialSource | None = None,
        pool_size: int = 32,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        self._endpoint = Endpoint.parse(endpoint_url)
        self.endpoint_url = endpoint_url
        self._host = self._endpoint.host
        self._base_path = self._endpoint.path.rstrip("/")
        self._signer = SigV4Signer(SERVICE, region, credentials or environment_credentials())
        self._pool_size = max(1, pool_size)
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        # The CA bundle is loaded here (tens of ms), at init: in a SnapStart snapshot it is free.
        self._tls = ssl.create_default_context() if self._endpoint.https else None

    @property
    def signer(self) -> SigV4Signer:
        return self._signer

    def path_of(self, connection_id: str) -> str:
        return f"{self._base_path}/@connections/{quote(connection_id, safe='')}"

    def post(self, connection_id: str, data: bytes) -> Answer:
        return self.request("POST", self.path_of(connection_id), data)

    def delete(self, connection_id: str) -> Answer:
        return self.request("DELETE", self.path_of(connection_id), b"")

    def request(self, method: str, path: str, body: bytes) -> Answer:
        """One request and its answer; :class:`NotSent` or :class:`NoAnswer` when none came back."""
        for _ in range(2):  # the second time only after a stale keep-alive connection
            conn, reused = self._borrow()
            try:
                answer = self._exchange(conn, method, path, body, reused)
            except StaleConnection:
                conn.close()
                continue
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise NoAnswer(f"{method} {path}: {exc!r}") from exc
            except BaseException:
                conn.close()
                raise
            self._give_back(conn)
            return answer
        raise NoAnswer(f"{method} {path}: the endpoint closed two connections without answering")

    def _exchange(
        self, conn: http.client.HTTPConnection, method: str, path: str, body: bytes, reused: bool
    ) -> Answer:
        sock = conn.sock
        if sock is None:
            raise StaleConnection
        headers = self._signer.headers(method, self._host, path, body)
        # The request in ONE write: http.client sends the head and the body in two, which costs
        # a second syscall and TCP segment per post (a third of the client's CPU on loopback).
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        data = f"{method} {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        try:
            sock.sendall(data)
            response = http.client.HTTPResponse(sock, method=method)
            response.begin()
        except IDLE_CLOSED:
            if reused:
                raise StaleConnection from None
            raise
        payload = response.read()
        if response.will_close:
            conn.close()  # the server said so: the pool must not hand it out again
        # "GoneException" or "GoneException:http://internal/" (the type, then where it is defined)
        error_type = (response.getheader("x-amzn-ErrorType") or "").partition(":")[0]
        return Answer(response.status, error_type, payload)

    def _borrow(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        try:
            conn = self._endpoint.connect(
                self._tls,
                connect_timeout_s=self._connect_timeout_s,
                read_timeout_s=self._read_timeout_s,
                nodelay=True,
            )
        except OSError as exc:  # refused, unreachable, DNS, TLS handshake, connect timeout
            endpoint = self._endpoint
            raise NotSent(f"connecting to {endpoint.hostname}:{endpoint.port}: {exc!r}") from exc
        return conn, False

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        if conn.sock is None:  # closed (will_close)
            return
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections (SnapStart's before-snapshot hook, tests)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
