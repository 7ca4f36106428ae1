"""The API Gateway Management API (``@connections``) served locally over HTTP.

The real boto3 ``apigatewaymanagementapi`` client works against it unchanged::

    client = boto3.client("apigatewaymanagementapi", endpoint_url=api.endpoint_url)
    client.post_to_connection(ConnectionId=cid, Data=b"...")

botocore appends the operation path (``/@connections/{id}``) to the endpoint URL's path, so an
``endpoint_url`` ending in ``/{stage}`` (as API Gateway's ``https://{api}.execute-api.{region}
.amazonaws.com/{stage}``) requests ``/{stage}/@connections/{id}``; both that and the stage-less
form are served. Behaviour matched to API Gateway:

* ``POST`` sends the body to the connection (200, empty body); over 128 KB -> 413
  ``PayloadTooLargeException``.
* ``GET`` -> ``{"connectedAt", "lastActiveAt", "identity": {"sourceIp", "userAgent"}}``.
* ``DELETE`` closes the connection (204).
* A closed or unknown connection -> 410 ``GoneException``; a wrong stage -> 403 ``ForbiddenException``.
* Requests must be SigV4-signed for service ``execute-api`` with a local key pair (default
  ``testing``/``testing``) and the local region, as API Gateway requires IAM-signed calls:
  unsigned -> 403 ``{"message": "Missing Authentication Token"}``, an unknown key -> 403
  ``UnrecognizedClientException``, a wrong service/region/secret or a stale timestamp -> 403
  ``InvalidSignatureException`` (local_stack.sigv4). ``sigv4=None`` turns the check off.

Where the connections live is pluggable (:class:`ConnectionBackend`): the local WebSocket API
registers its live sockets; handler tests use :class:`RecordingBackend`, which records what was
posted and lets a test mark a connection gone. An artificial ``latency_s`` (changeable at run
time) delays every answer, to measure fan-out against a realistic endpoint.

For tests and benchmarks, :func:`running_management_api` runs the server on an ephemeral port in
a background thread::

    with running_management_api(latency_s=0.02) as api:
        cid = api.backend.register()
        ...  # code under test posts through api.endpoint_url
        assert api.backend.posted_json(cid) == [...]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from local_stack.apigw_events import aws_id
from local_stack.aws_endpoint import sigv4_middleware
from local_stack.background import BackgroundLoop
from local_stack.sigv4 import SigV4Config

#: API Gateway's PostToConnection payload limit.
MAX_POST_BYTES = 128 * 1024


def new_connection_id() -> str:
    """An id shaped like API Gateway's connection ids (``BFHPhfCWIAMCKlQ=``)."""
    return aws_id()


class ConnectionGone(Exception):
    """The connection is closed or never existed (API Gateway answers 410)."""


@dataclass
class ConnectionInfo:
    connected_at: datetime
    last_active_at: datetime
    source_ip: str
    user_agent: str

    def to_json(self) -> dict[str, Any]:
        return {
            "connectedAt": _iso(self.connected_at),
            "lastActiveAt": _iso(self.last_active_at),
            "identity": {"sourceIp": self.source_ip, "userAgent": self.user_agent},
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@runtime_checkable
class ConnectionBackend(Protocol):
    """Where connections live. Every method raises :class:`ConnectionGone` for unknown/closed ids.

    Methods are called on the server's event loop.
    """

    async def post(self, connection_id: str, data: bytes) -> None: ...

    async def info(self, connection_id: str) -> ConnectionInfo: ...

    async def close(self, connection_id: str) -> None: ...


@dataclass
class _Recorded:
    info: ConnectionInfo
    posts: list[bytes] = field(default_factory=list)
    gone: bool = False
    closed_by_api: bool = False


class RecordingBackend:
    """In-memory connections for handler tests: register ids, read what was posted, mark gone.

    Thread-safe: the server calls it from its loop thread while the test reads from its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._connections: dict[str, _Recorded] = {}

    # --- test side ----------------------------------------------------------------------
    def register(
        self, connection_id: str | None = None, *, source_ip: str = "127.0.0.1", user_agent: str = "test"
    ) -> str:
        cid = connection_id or new_connection_id()
        now = datetime.now(UTC)
        with self._lock:
            self._connections[cid] = _Recorded(ConnectionInfo(now, now, source_ip, user_agent))
        return cid

    def mark_gone(self, connection_id: str) -> None:
        """The client vanished: later calls for this id answer 410 (posts so far are kept)."""
        with self._lock:
            self._connections[connection_id].gone = True

    def is_gone(self, connection_id: str) -> bool:
        with self._lock:
            rec = self._connections.get(connection_id)
            return rec is None or rec.gone

    def closed_by_api(self, connection_id: str) -> bool:
        """True when DELETE @connections/{id} closed it."""
        with self._lock:
            rec = self._connections.get(connection_id)
            return rec is not None and rec.closed_by_api

    def posted(self, connection_id: str) -> list[bytes]:
        with self._lock:
            rec = self._connections.get(connection_id)
            return list(rec.posts) if rec else []

    def posted_json(self, connection_id: str) -> list[Any]:
        return [json.loads(data) for data in self.posted(connection_id)]

    def all_posts(self) -> dict[str, list[bytes]]:
        with self._lock:
            return {cid: list(rec.posts) for cid, rec in self._connections.items() if rec.posts}

    def wait_for_posts(self, connection_id: str, count: int, timeout: float = 5.0) -> list[bytes]:
        """Block until ``count`` posts reached ``connection_id`` (for asynchronous fan-out)."""
        with self._lock:
            self._lock.wait_for(lambda: len(self._posts_locked(connection_id)) >= count, timeout)
            return list(self._posts_locked(connection_id))

    def _posts_locked(self, connection_id: str) -> list[bytes]:
        rec = self._connections.get(connection_id)
        return rec.posts if rec else []

    def clear(self) -> None:
        with self._lock:
            self._connections.clear()

    # --- ConnectionBackend ------------------------------------------------------------------
    def _live(self, connection_id: str) -> _Recorded:
        rec = self._connections.get(connection_id)
        if rec is None or rec.gone:
            raise ConnectionGone(connection_id)
        return rec

    async def post(self, connection_id: str, data: bytes) -> None:
        with self._lock:
            self._live(connection_id).posts.append(data)
            self._lock.notify_all()

    async def info(self, connection_id: str) -> ConnectionInfo:
        with self._lock:
            return self._live(connection_id).info

    async def close(self, connection_id: str) -> None:
        with self._lock:
            rec = self._live(connection_id)
            rec.gone = True
            rec.closed_by_api = True
            self._lock.notify_all()


def _error(status: int, error_type: str, message: str | None) -> web.Response:
    # botocore's rest-json parser takes the code from this header and the message from the body.
    return web.json_response(
        {"message": message}, status=status, headers={"x-amzn-ErrorType": f"{error_type}:http://internal"}
    )


class ManagementApi:
    """The aiohttp application serving ``[/{stage}]/@connections/{connection_id}``."""

    #: API Gateway's signing name (the Management API is part of execute-api).
    signing_name = "execute-api"

    def __init__(
        self,
        backend: ConnectionBackend,
        *,
        stage: str | None = None,
        latency_s: float = 0.0,
        sigv4: SigV4Config | None = None,
    ) -> None:
        self.backend = backend
        #: Verify SigV4 with these keys/region; None accepts unsigned requests.
        self.sigv4 = sigv4
        #: None accepts any stage (tests); the gateway pins its own.
        self.stage = stage
        #: Delay before every answer (seconds); change it at run time to model a slow endpoint.
        self.latency_s = latency_s
        #: Fault injection (tests): DeleteConnection answers 500 and closes nothing, as when
        #: the @connections endpoint fails during a ban.
        self.fail_deletes = False
        self.requests = 0
        #: Server-side time spent on POSTs (artificial latency excluded), for the benchmark.
        self.post_ms_total = 0.0
        self.posts = 0

    def app(self) -> web.Application:
        middlewares = []
        if self.sigv4 is not None:
            middlewares.append(sigv4_middleware(self.sigv4, lambda _: (self.signing_name, "rest")))
        app = web.Application(client_max_size=4 * MAX_POST_BYTES, middlewares=middlewares)
        self.add_routes(app)
        return app

    def add_routes(self, app: web.Application) -> None:
        for prefix in ("/{stage}/@connections/{connection_id}", "/@connections/{connection_id}"):
            app.router.add_route("POST", prefix, self._post)
            app.router.add_route("GET", prefix, self._get)
            app.router.add_route("DELETE", prefix, self._delete)

    async def _pre(self, request: web.Request) -> web.Response | None:
        self.requests += 1
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        stage = request.match_info.get("stage")
        if self.stage is not None and stage is not None and stage != self.stage:
            return _error(403, "ForbiddenException", "Forbidden")
        return None

    async def _post(self, request: web.Request) -> web.Response:
        if (refused := await self._pre(request)) is not None:
            return refused
        if request.content_length is not None and request.content_length > MAX_POST_BYTES:
            return _error(413, "PayloadTooLargeException", "Request entity too large")
        started = time.perf_counter()
        data = await request.read()
        if len(data) > MAX_POST_BYTES:
            return _error(413, "PayloadTooLargeException", "Request entity too large")
        try:
            await self.backend.post(request.match_info["connection_id"], data)
        except ConnectionGone:
            return _error(410, "GoneException", None)
        finally:
            self.posts += 1
            self.post_ms_total += (time.perf_counter() - started) * 1000
        return web.Response(status=200)

    async def _get(self, request: web.Request) -> web.Response:
        if (refused := await self._pre(request)) is not None:
            return refused
        try:
            info = await self.backend.info(request.match_info["connection_id"])
        except ConnectionGone:
            return _error(410, "GoneException", None)
        return web.json_response(info.to_json())

    async def _delete(self, request: web.Request) -> web.Response:
        if (refused := await self._pre(request)) is not None:
            return refused
        if self.fail_deletes:
            return _error(500, "InternalServerError", "Internal server error (fault injected)")
        try:
            await self.backend.close(request.match_info["connection_id"])
        except ConnectionGone:
            return _error(410, "GoneException", None)
        return web.Response(status=204)


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start ``app`` on host:port (0 = ephemeral); returns the runner and the bound port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or ()
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    return runner, bound


@dataclass
class RunningManagementApi:
    api: ManagementApi
    host: str
    port: int
    default_stage: str

    @property
    def backend(self) -> Any:
        """The backend (typed Any so tests can call RecordingBackend helpers directly)."""
        return self.api.backend

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint_url(self) -> str:
        """What to pass as boto3's ``endpoint_url`` (and ``WS_MANAGEMENT_ENDPOINT``)."""
        return f"{self.base_url}/{self.default_stage}"

    def set_latency(self, seconds: float) -> None:
        self.api.latency_s = seconds

    def set_fail_deletes(self, fail: bool) -> None:
        """Make DeleteConnection fail (500, nothing closed) until set back."""
        self.api.fail_deletes = fail


@contextlib.contextmanager
def running_management_api(
    backend: ConnectionBackend | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    latency_s: float = 0.0,
    stage: str = "local",
    strict_stage: bool = False,
    sigv4: SigV4Config | None = SigV4Config(),  # noqa: B008 - frozen, shared safely
) -> Iterator[RunningManagementApi]:
    """Serve the @connections API in a background thread (default: a fresh RecordingBackend).
    Requests must be SigV4-signed with ``sigv4``'s keys (default ``testing``/``testing``,
    us-east-1), as API Gateway requires; None accepts unsigned requests."""
    api = ManagementApi(
        backend or RecordingBackend(), stage=stage if strict_stage else None, latency_s=latency_s, sigv4=sigv4
    )
    loop = BackgroundLoop("management-api")
    try:
        runner, bound = loop.run(start_site(api.app(), host, port))
        try:
            yield RunningManagementApi(api, host, bound, stage)
        finally:
            loop.run(runner.cleanup())
    finally:
        loop.close()
