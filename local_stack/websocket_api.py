"""API Gateway WebSocket API emulation on a real WebSocket server (the ``websockets`` library).

Per connection, as API Gateway:

* Handshake: the path must be ``/{stage}`` (or ``/``); the ``$connect`` route's REQUEST authorizer
  runs first (missing identity source 401, deny 403, error 500 -- the handshake is refused with
  ``{"message": ...}``), then the ``$connect`` integration; a function error -> 500, a non-2xx
  ``statusCode`` -> that status. ``Sec-WebSocket-Protocol``: API Gateway never picks a
  subprotocol itself; the ``$connect`` integration must return the header, and only then does the
  handshake answer carry it.
* Messages: route selection on ``$request.body.action`` (non-JSON, binary or unknown action ->
  ``$default``; no ``$default`` -> a ``{"message": "Forbidden"}`` frame). Each message is its own
  invocation (concurrent, like Lambda). A route with a route response sends the handler's
  ``body`` back as a frame; a function error sends ``{"message": "Internal server error", ...}``.
* Limits: frames over 32 KB or messages over 128 KB close the connection with 1009; no inbound
  message for ``idle_timeout_s`` (10 min) or a connection older than ``max_lifetime_s`` (2 h)
  closes it with 1001 "Going away".
* ``$disconnect`` (best effort, after the socket is gone) carries ``disconnectStatusCode`` and
  ``disconnectReason`` (1006 when the client vanished without a close frame).
* The live connections back the @connections management API (:class:`LiveConnections`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from infra.catalog import WsRoute
from local_stack import apigw_events as ev
from local_stack.authorizers import AuthorizerRunner, identity_values
from local_stack.catalog_view import GatewayCatalog
from local_stack.connections import ConnectionGone, ConnectionInfo, new_connection_id
from local_stack.lambda_runtime import FunctionError, LambdaRuntime

log = logging.getLogger("local_stack.websocket")

MAX_FRAME_BYTES = 32 * 1024
MAX_MESSAGE_BYTES = 128 * 1024


@dataclass(frozen=True)
class WsLimits:
    idle_timeout_s: float = 10 * 60
    max_lifetime_s: float = 2 * 3600
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_message_bytes: int = MAX_MESSAGE_BYTES
    #: The opening handshake may take the $connect authorizer and the $connect integration, each
    #: up to API Gateway's 29 s integration timeout (websockets' own default, 10 s, is shorter).
    handshake_timeout_s: float = 2 * 29 + 2


@dataclass
class _Live:
    connection: ServerConnection
    facts: ev.WsConnectionFacts
    connected_at: float
    last_active: float
    #: Set when the gateway closes the socket itself (idle, lifetime, DeleteConnection).
    server_close: tuple[int, str] | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    gone: bool = False


@dataclass
class MessageStats:
    """Per-message cost of the emulation (for bench/gateway_throughput.py)."""

    messages: int = 0
    #: Frame received -> route response sent (or nothing to send), handler included.
    gateway_ms_total: float = 0.0
    #: The part spent awaiting the function (waiting for a worker + process hop + handler).
    invoke_ms_total: float = 0.0

    @property
    def emulation_ms_total(self) -> float:
        """Routing, event building, JSON and sending the route response: the gateway's own work."""
        return self.gateway_ms_total - self.invoke_ms_total


@dataclass
class _Pending:
    facts: ev.WsConnectionFacts
    subprotocol: str | None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _json_response(status: int, message: str) -> Response:
    """A refused handshake, with API Gateway's ``{"message": ...}`` body."""
    body = json.dumps({"message": message}).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return Response(status, _phrase(status), headers, body)


def select_route(body: str | bytes, expression: str, route_keys: set[str]) -> str:
    """Evaluate ``$request.body.<path>``; anything unmatched goes to ``$default``."""
    if isinstance(body, bytes):
        return "$default"
    try:
        value: Any = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can parse
        return "$default"
    for part in expression.removeprefix("$request.body.").split("."):
        if not isinstance(value, dict) or part not in value:
            return "$default"
        value = value[part]
    if isinstance(value, str) and value in route_keys and not value.startswith("$"):
        return value
    return "$default"


class WebSocketApi:
    """The emulated WebSocket API. Start with :meth:`start`, stop with :meth:`stop`."""

    def __init__(
        self,
        catalog: GatewayCatalog,
        runtime: LambdaRuntime,
        *,
        stage: str = "local",
        api_id: str | None = None,
        limits: WsLimits | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.runtime = runtime
        self.stage = stage
        self.api_id = api_id or ev.new_api_id()
        self.limits = limits or WsLimits()
        self.routes: dict[str, WsRoute] = {r.route_key: r for r in catalog.ws_routes}
        self.live: dict[str, _Live] = {}
        self._pending: dict[int, _Pending] = {}
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.api: ev.WsApi | None = None
        self.port = 0
        #: Test hook: sees every event handed to a function (route key, event).
        self.on_event = on_event
        #: Fault injection: connections whose $disconnect is never delivered (API Gateway only
        #: promises it best effort), so tests can reach the 410 clean-up path.
        self.lost_disconnects: set[str] = set()
        self.message_stats = MessageStats()
        connect = self.routes.get("$connect")
        self.connect_authorizer: AuthorizerRunner | None = None
        if connect is not None and connect.authorizer is not None:
            self.connect_authorizer = AuthorizerRunner(
                catalog.authorizer(connect.authorizer), self.runtime.invoke, kind="websocket"
            )

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            max_size=(self.limits.max_message_bytes, self.limits.max_frame_bytes),
            open_timeout=self.limits.handshake_timeout_s,
            ping_interval=None,  # API Gateway answers pings but never sends them
            compression=None,  # API Gateway does not negotiate permessage-deflate
            server_header=None,
        )
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        self.api = ev.WsApi(self.api_id, self.stage, f"{host}:{self.port}")

    @property
    def url(self) -> str:
        assert self.api is not None
        return f"ws://{self.api.domain_name}/{self.stage}"

    async def stop(self) -> None:
        if self._server is not None:
            for live in list(self.live.values()):
                live.server_close = (1001, "Going away")
            self._server.close()
            await self._server.wait_closed()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Any, owner: set[asyncio.Task[None]] | None = None) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        for bucket in (self._tasks, owner):
            if bucket is not None:
                bucket.add(task)
                task.add_done_callback(bucket.discard)

    async def _call(self, route_key: str, event: dict[str, Any]) -> Any:
        route = self.routes[route_key]
        if self.on_event is not None:
            self.on_event(route_key, event)
        return await self.runtime.invoke(route.function, event)

    # --- handshake ----------------------------------------------------------------------------
    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        assert self.api is not None
        parts = urlsplit(request.path)
        if parts.path.rstrip("/") not in ("", f"/{self.stage}"):
            return _json_response(403, "Forbidden")
        remote = connection.remote_address
        facts = ev.WsConnectionFacts(
            connection_id=new_connection_id(),
            connected_at_ms=ev.now_ms(),
            source_ip=str(remote[0]) if remote else "127.0.0.1",
            user_agent=request.headers.get("User-Agent", ""),
            headers=list(request.headers.raw_items()),
            query=parse_qsl(parts.query, keep_blank_values=True),
            # ws:// locally (API Gateway: wss on 443); what the client really used goes in.
            port=self.port,
            proto="http",
            trace_id=ev.trace_header(request.headers.get("X-Amzn-Trace-Id")),
        )
        if self.connect_authorizer is not None:
            headers, _ = ev.single_and_multi(facts.headers)
            query, _ = ev.single_and_multi(facts.query)
            identity = identity_values(self.connect_authorizer.authorizer.identity_sources, headers, query)
            if identity is None:
                return _json_response(401, "Unauthorized")
            decision = await self.connect_authorizer.decide(
                identity, ev.ws_authorizer_event(self.api, facts), self.api.route_arn("$connect")
            )
            if not decision.allowed:
                return _json_response(decision.status, _STATUS_MESSAGES.get(decision.status, "Error"))
            facts.authorizer = decision.context
        subprotocol: str | None = None
        if "$connect" in self.routes:
            try:
                result = await self._call("$connect", ev.ws_connect_event(self.api, facts))
            except FunctionError as exc:
                log.error("$connect failed: %s", exc)
                return _json_response(500, "Internal server error")
            status = result.get("statusCode", 200) if isinstance(result, dict) else 200
            if not isinstance(status, int) or not 200 <= status < 300:
                status = status if isinstance(status, int) and 400 <= status < 600 else 500
                return _json_response(status, _STATUS_MESSAGES.get(status) or _phrase(status) or "Forbidden")
            result_headers = result.get("headers") if isinstance(result, dict) else None
            if isinstance(result_headers, dict):
                for key, value in result_headers.items():
                    if key.lower() == "sec-websocket-protocol":
                        subprotocol = str(value)
        self._pending[id(connection)] = _Pending(facts, subprotocol)
        self._spawn(self._reap_unopened(connection))
        return None

    async def _reap_unopened(self, connection: ServerConnection) -> None:
        """A client that hung up while $connect ran never reaches :meth:`_handle` (websockets
        drops a handshake it cannot finish), yet its $connect succeeded: like API Gateway for a
        connection it accepted, send $disconnect (1006) so the function can unregister it."""
        await asyncio.shield(connection.connection_lost_waiter)
        pending = self._pending.pop(id(connection), None)  # None: _handle took it (normal life)
        if pending is not None:
            await self._on_disconnect(pending.facts, 1006, "")

    def _select_subprotocol(self, connection: ServerConnection, offered: Any) -> Any:
        pending = self._pending.get(id(connection))
        chosen = pending.subprotocol if pending else None
        return chosen if chosen is not None and chosen in offered else None

    # --- connection life ----------------------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        pending = self._pending.pop(id(connection))
        now = time.monotonic()
        live = _Live(connection, pending.facts, now, now)
        cid = pending.facts.connection_id
        self.live[cid] = live
        watchdog = asyncio.create_task(self._watchdog(live))
        try:
            async for message in connection:
                live.last_active = time.monotonic()
                self._spawn(self._on_message(live, message), live.tasks)
        except ConnectionClosed:
            pass
        finally:
            watchdog.cancel()
            live.gone = True
            self.live.pop(cid, None)
            code, reason = self._close_status(live)
            self._spawn(self._on_disconnect(live.facts, code, reason))

    def _close_status(self, live: _Live) -> tuple[int, str]:
        if live.server_close is not None:
            return live.server_close
        protocol = live.connection.protocol
        if protocol.close_rcvd is not None:
            return int(protocol.close_rcvd.code), protocol.close_rcvd.reason
        if protocol.close_sent is not None:  # we failed the connection (e.g. 1009 too big)
            return int(protocol.close_sent.code), protocol.close_sent.reason
        return 1006, ""

    async def _watchdog(self, live: _Live) -> None:
        limits = self.limits
        while True:
            now = time.monotonic()
            idle_left = live.last_active + limits.idle_timeout_s - now
            life_left = live.connected_at + limits.max_lifetime_s - now
            if idle_left <= 0 or life_left <= 0:
                live.server_close = (1001, "Going away")
                await live.connection.close(1001, "Going away")
                return
            await asyncio.sleep(min(idle_left, life_left))

    async def _on_message(self, live: _Live, message: str | bytes) -> None:
        started = time.perf_counter()
        try:
            await self._route_message(live, message)
        finally:
            self.message_stats.messages += 1
            self.message_stats.gateway_ms_total += (time.perf_counter() - started) * 1000

    async def _route_message(self, live: _Live, message: str | bytes) -> None:
        assert self.api is not None
        route_key = select_route(message, self.catalog.route_selection_expression, set(self.routes))
        if route_key not in self.routes:  # no $default route declared
            await self._send_frame(live, {"message": "Forbidden", "connectionId": live.facts.connection_id})
            return
        event = ev.ws_message_event(self.api, live.facts, route_key, message)
        request_id = event["requestContext"]["requestId"]
        invoked = time.perf_counter()
        try:
            result = await self._call(route_key, event)
        except FunctionError as exc:
            self.message_stats.invoke_ms_total += (time.perf_counter() - invoked) * 1000
            log.error("route %s failed: %s", route_key, exc)
            await self._send_frame(
                live,
                {
                    "message": "Internal server error",
                    "connectionId": live.facts.connection_id,
                    "requestId": request_id,
                },
            )
            return
        self.message_stats.invoke_ms_total += (time.perf_counter() - invoked) * 1000
        if not self.routes[route_key].route_response or result is None:
            return
        if isinstance(result, dict):
            body = result.get("body")
            if body is None:
                return
            await self._send_raw(live, body if isinstance(body, str) else json.dumps(body))
        else:
            await self._send_raw(live, result if isinstance(result, str) else json.dumps(result))

    async def _send_frame(self, live: _Live, payload: dict[str, Any]) -> None:
        await self._send_raw(live, json.dumps(payload))

    async def _send_raw(self, live: _Live, data: str | bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await live.connection.send(data)

    async def _on_disconnect(self, facts: ev.WsConnectionFacts, code: int, reason: str) -> None:
        assert self.api is not None
        if "$disconnect" not in self.routes or facts.connection_id in self.lost_disconnects:
            return
        try:
            await self._call("$disconnect", ev.ws_disconnect_event(self.api, facts, code, reason))
        except FunctionError as exc:
            log.error("$disconnect failed: %s", exc)


_STATUS_MESSAGES = {401: "Unauthorized", 403: "Forbidden", 500: "Internal server error"}


class LiveConnections:
    """The @connections backend over the WebSocket API's live sockets."""

    def __init__(self, api: WebSocketApi) -> None:
        self.api = api

    def _live(self, connection_id: str) -> _Live:
        live = self.api.live.get(connection_id)
        if live is None or live.gone:
            raise ConnectionGone(connection_id)
        return live

    async def post(self, connection_id: str, data: bytes) -> None:
        live = self._live(connection_id)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            payload: str | bytes = data
        else:
            payload = text
        try:
            await live.connection.send(payload)
        except ConnectionClosed:
            raise ConnectionGone(connection_id) from None

    async def info(self, connection_id: str) -> ConnectionInfo:
        live = self._live(connection_id)
        wall = time.time() - time.monotonic()
        return ConnectionInfo(
            connected_at=datetime.fromtimestamp(live.facts.connected_at_ms / 1000, UTC),
            last_active_at=datetime.fromtimestamp(wall + live.last_active, UTC),
            source_ip=live.facts.source_ip,
            user_agent=live.facts.user_agent,
        )

    async def close(self, connection_id: str) -> None:
        live = self._live(connection_id)
        live.gone = True  # 410 from now on, even before the close handshake finishes
        live.server_close = (1000, "")
        self.api._spawn(live.connection.close(1000, ""))
