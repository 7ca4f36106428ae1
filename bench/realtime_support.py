"""Shared set-up for the realtime benchmarks (bench/ws_send.py, bench/fanout.py,
bench/registry_scale.py): a throwaway database + Redis prefix, the local @connections server,
and round-trip counters for Postgres and Redis.

Round trips are counted on the wire, independent of the client library:

* Postgres: a TCP proxy in front of the server counts the client's bursts -- messages sent after
  the server last answered, i.e. the times the client waited (psycopg sends Parse/Bind/Execute/
  Sync per statement outside pipeline mode, BEGIN/COMMIT are simple queries; in pipeline mode
  several statements and Syncs go out in one burst). It also counts Sync/Query messages.
* Redis: redis-py's ``send_packed_command`` calls (a pipeline or a script call is one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import statistics
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from chatflow.container import Container
from tests.support.lambdas import reset_handlers
from tests.support.rooms import chat_container

# Benchmarks print results, not EMF metric lines.
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def quiet(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with stdout swallowed (handlers print EMF metric lines); returns its result."""
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


# --- percentiles -------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {"p50": pct(ms, 50), "p99": pct(ms, 99), "mean": statistics.fmean(ms), "n": float(len(ms))}


# --- Postgres round-trip counting proxy --------------------------------------------------------------


class PgRoundTripProxy:
    """Forwards TCP to Postgres and counts round trips: client messages sent after the server
    last answered (a burst of pipelined messages is one wait, however many Syncs it holds).
    ``syncs`` also counts the client's Sync ('S') and Query ('Q') messages."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.count = 0
        self.syncs = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-proxy", daemon=True)

    def start(self) -> None:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def reset(self) -> int:
        """Round trips since the last reset (and start a new count, with ``syncs``)."""
        with self._lock:
            n, self.count, self.syncs = self.count, 0, 0
        return n

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        #: The server sent something since the client's last counted message: the next client
        #: message starts a new round trip.
        answered = [True]

        async def pump_server() -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await server_r.read(65536):
                    answered[0] = True
                    client_w.write(data)
                    await client_w.drain()
            client_w.close()

        task = asyncio.ensure_future(pump_server())
        try:
            await self._pump_client(client_r, server_w, answered)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            server_w.close()
            task.cancel()

    async def _pump_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answered: list[bool]
    ) -> None:
        # Untyped start-up messages: SSLRequest / GSSENCRequest (answered with one byte, then the
        # next untyped message follows) and the StartupMessage.
        while True:
            head = await reader.readexactly(4)
            (length,) = struct.unpack("!I", head)
            body = await reader.readexactly(length - 4)
            writer.write(head + body)
            await writer.drain()
            code = struct.unpack("!I", body[:4])[0] if len(body) >= 4 else 0
            if code not in (80877103, 80877104):  # not SSL/GSSENC request: it was the startup
                break
        # Then typed messages. Forwarded in the chunks they arrive in (a pipelined burst is one
        # write by the client, hence usually one chunk): a chunk read after the server answered
        # starts a new round trip; the server cannot answer a chunk before it was forwarded.
        pending = b""
        while data := await reader.read(65536):
            with self._lock:
                if answered[0]:
                    answered[0] = False
                    self.count += 1
                pending += data
                while len(pending) >= 5:
                    (length,) = struct.unpack("!I", pending[1:5])
                    if len(pending) < 1 + length:
                        break
                    if pending[:1] in (b"S", b"Q"):
                        self.syncs += 1
                    pending = pending[1 + length :]
            writer.write(data)
            await writer.drain()


# --- Redis round trips -------------------------------------------------------------------------------


class RedisRoundTrips:
    """Counts redis-py's packed sends (one per command, pipeline or script call)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._original: Callable[..., Any] | None = None

    def install(self) -> None:
        from redis.connection import AbstractConnection

        original = AbstractConnection.send_packed_command
        self._original = original
        counter = self

        def counted(conn: Any, command: Any, check_health: bool = True) -> None:
            with counter._lock:
                counter.count += 1
            original(conn, command, check_health)

        setattr(AbstractConnection, "send_packed_command", counted)  # noqa: B010

    def uninstall(self) -> None:
        from redis.connection import AbstractConnection

        if self._original is not None:
            setattr(AbstractConnection, "send_packed_command", self._original)  # noqa: B010

    def reset(self) -> int:
        with self._lock:
            n, self.count = self.count, 0
        return n


# --- environment ---------------------------------------------------------------------------------------


@dataclass
class BenchEnv:
    database_url: str
    redis_prefix: str
    #: The services as the functions build them, on the bench settings (set-up and checks).
    container: Container
    pg_proxy: PgRoundTripProxy | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _with_port(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@contextlib.contextmanager
def bench_environment(env: dict[str, str] | None = None, *, count_pg: bool = False) -> Iterator[BenchEnv]:
    """A fresh migrated database and Redis prefix, settings pointed at them; removed afterwards."""
    from chatflow.adapters.postgres.migrate import migrate

    name = f"chatflow_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = ADMIN_URL.rpartition("/")
    url = f"{base}/{name}"
    prefix = f"cfbench:{secrets.token_hex(4)}:"
    proxy: PgRoundTripProxy | None = None
    saved = dict(os.environ)
    try:
        migrate(url)
        app_url = url
        if count_pg:
            parts = urlsplit(url)
            proxy = PgRoundTripProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
            proxy.start()
            app_url = _with_port(url, "127.0.0.1", proxy.port) + "?sslmode=disable"
        os.environ.update(
            {
                "ENV": "test",
                "DATABASE_URL": app_url,
                "REDIS_URL": REDIS_URL,
                "REDIS_KEY_PREFIX": prefix,
                "POWERTOOLS_SERVICE_NAME": "chatflow-bench",
                "POWERTOOLS_METRICS_NAMESPACE": "ChatflowBench",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "testing",  # the local endpoints' key pair
                "AWS_SECRET_ACCESS_KEY": "testing",
                **(env or {}),
            }
        )
        reset_handlers()  # every function cold-starts with these settings
        with chat_container() as container:
            yield BenchEnv(url, prefix, container, proxy)
    finally:
        reset_handlers()
        os.environ.clear()
        os.environ.update(saved)
        if proxy is not None:
            proxy.stop()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            for i in range(0, len(keys), 500):
                client.delete(*keys[i : i + 500])
        finally:
            client.close()


def insert_users(database_url: str, n: int) -> list[Any]:
    """``n`` active users straight into the database (benchmarks need rows, not sign-ups)."""
    import uuid

    from chatflow.domain.identity import Identity

    out: list[Identity] = []
    with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cur:
        rows = []
        for _ in range(n):
            uid = uuid.uuid4()
            handle = f"b{secrets.token_hex(6)}"
            rows.append((uid, handle, handle, "bench-only"))
            out.append(Identity(uid, handle, "user", int(time.time()), secrets.token_hex(6)))
        cur.executemany(
            "INSERT INTO users (id, handle, display_name, password_hash) VALUES (%s, %s, %s, %s)", rows
        )
    return out


def connected_room(benv: BenchEnv, backend: Any, n: int, label: str) -> tuple[list[Any], Any, dict[Any, str]]:
    """A public room of ``n`` new members (the first owns it), each connected once through the real
    ws_connect handler and registered with ``backend`` (local_stack's RecordingBackend):
    ``(members, room, {user_id: connection id})``."""
    import uuid

    from local_stack.connections import new_connection_id
    from tests.support.apigw import lambda_context
    from tests.support.lambdas import load_handler
    from tests.support.ws_events import connect_event

    rooms = benv.container.rooms
    users = insert_users(benv.database_url, n)
    room = rooms.create_channel(users[0], "public", f"{label}-{uuid.uuid4().hex[:8]}").room
    for u in users[1:]:
        rooms.join(u, room.id)
    connect = load_handler("ws_connect")
    cids: dict[Any, str] = {}
    for u in users:
        cid = backend.register(new_connection_id())
        assert connect(connect_event(u, cid), lambda_context("ws_connect"))["statusCode"] == 200
        cids[u.user_id] = cid
    return users, room, cids
