"""Where a lean AWS client connects, and the keep-alive rules both clients share.

Used by the @connections client (``chatflow/adapters/apigw_http.py``: a pool, one connection per
fan-out worker) and the EventBridge / SNS clients (``chatflow/adapters/aws_http.py``: one lazily
opened connection). What is the same for both lives here: the endpoint URL parsed once
(:class:`Endpoint`), opening an ``http.client`` connection with a connect timeout then a read
timeout (:meth:`Endpoint.connect`), and which errors of a REUSED connection mean "the server
closed it while idle" (:data:`IDLE_CLOSED` -> :class:`StaleConnection`: nothing reached the
service, so the request may be sent once more on a fresh connection). What differs stays in each
client: when the TLS context is built (at init for the fan-out, in a SnapStart snapshot; on first
use for the cold-start-bound EventBridge/SNS clients), how a request is written, and what a
failure is reported as (``NotSent`` / ``NoAnswer`` vs ``AwsConnectionError``).
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["IDLE_CLOSED", "Endpoint", "StaleConnection"]

#: What a REUSED keep-alive connection raises when the server closed it while idle, before any
#: answer byte: nothing was processed, so sending the request again cannot deliver it twice.
IDLE_CLOSED = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class StaleConnection(Exception):
    """Internal to the clients: a reused keep-alive connection was closed before answering."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    https: bool
    hostname: str
    port: int
    #: The Host header botocore sends (the netloc without credentials).
    host: str
    #: The URL's path as given ("" when it has none).
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint URL: {url!r}")
        https = parts.scheme == "https"
        return cls(
            url=url,
            https=https,
            hostname=parts.hostname,
            port=parts.port or (443 if https else 80),
            host=parts.netloc.rpartition("@")[2],
            path=parts.path,
        )

    def connect(
        self,
        tls: ssl.SSLContext | None,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        nodelay: bool = False,
    ) -> http.client.HTTPConnection:
        """A connected ``http.client`` connection (TLS with ``tls`` for an https endpoint); its
        socket then waits at most ``read_timeout_s``. ``nodelay``: TCP_NODELAY and SO_KEEPALIVE.
        OSError (refused, DNS, TLS handshake, connect timeout) when it cannot connect."""
        conn: http.client.HTTPConnection
        if self.https:
            # tls None: http.client builds its default context (the callers always pass theirs).
            conn = http.client.HTTPSConnection(
                self.hostname, self.port, timeout=connect_timeout_s, context=tls
            )
        else:
            conn = http.client.HTTPConnection(self.hostname, self.port, timeout=connect_timeout_s)
        conn.connect()
        sock = conn.sock
        if sock is not None:
            sock.settimeout(read_timeout_s)
            if nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return conn
