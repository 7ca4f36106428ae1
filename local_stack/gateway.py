"""The local gateway: WebSocket API + HTTP API + @connections + EventBridge over one Lambda runtime.

Everything runs on one asyncio loop; functions run in worker processes (local_stack.lambda_runtime).
Ports (0 = ephemeral): WebSocket, HTTP API, @connections management API, EventBridge PutEvents, web
page. Workers get ``WS_MANAGEMENT_ENDPOINT`` / ``EVENTS_ENDPOINT_URL`` pointing at this gateway, so
handlers reach it through their ordinary boto3 clients, as they reach AWS in the cloud.

:func:`running_gateway` hosts it in a background thread (tests, benchmarks); ``python -m
local_stack`` runs it in the foreground (``make dev``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from local_stack.background import BackgroundLoop
from local_stack.catalog_view import GatewayCatalog
from local_stack.connections import ManagementApi, start_site
from local_stack.http_api import CorsConfig, HttpApi
from local_stack.lambda_runtime import FunctionError, LambdaRuntime
from local_stack.web_page import web_page_app
from local_stack.websocket_api import LiveConnections, WebSocketApi, WsLimits

log = logging.getLogger("local_stack")


@dataclass
class GatewayConfig:
    #: The environment every function starts from (settings, keys, AWS dummy credentials).
    env: Mapping[str, str]
    catalog: GatewayCatalog = field(default_factory=GatewayCatalog.from_catalog)
    host: str = "127.0.0.1"
    ws_port: int = 0
    http_port: int = 0
    management_port: int = 0
    events_port: int = 0
    web_port: int | None = None  # None: no web page server
    stage: str = "local"
    limits: WsLimits = field(default_factory=WsLimits)
    cors: CorsConfig = field(default_factory=CorsConfig)
    management_latency_s: float = 0.0
    lambda_concurrency: int | None = None
    with_eventbridge: bool = True
    #: Run the catalog's SCHEDULES (e.g. the outbox sweep) through the EventBridge emulation.
    with_schedules: bool = True
    #: Cold-start these functions during start-up so the first request is not slow.
    warm: tuple[str, ...] = ()
    log_sink: Callable[[str, str], None] | None = None
    #: Sees every event handed to a route's function (route key, event): tests check shapes with it.
    on_event: Callable[[str, dict[str, Any]], None] | None = None


class LocalGateway:
    def __init__(self, config: GatewayConfig) -> None:
        config.catalog.validate()
        self.config = config
        self.runtime: LambdaRuntime | None = None
        self.ws: WebSocketApi | None = None
        self.http: HttpApi | None = None
        self.management: ManagementApi | None = None
        self.bus: Any = None
        self._runners: list[web.AppRunner] = []
        self.http_url = self.management_url = self.events_url = ""
        self.web_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def ws_url(self) -> str:
        assert self.ws is not None
        return self.ws.url

    @property
    def management_endpoint(self) -> str:
        """boto3 endpoint_url of the @connections API, stage included."""
        return f"{self.management_url}/{self.config.stage}"

    async def start(self) -> None:
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        # @connections first: its URL goes into the functions' environment.
        placeholder = _Deferred()
        self.management = ManagementApi(placeholder, stage=cfg.stage, latency_s=cfg.management_latency_s)
        runner, port = await start_site(self.management.app(), cfg.host, cfg.management_port)
        self._runners.append(runner)
        self.management_url = f"http://{cfg.host}:{port}"

        env = dict(cfg.env)
        env["WS_MANAGEMENT_ENDPOINT"] = self.management_endpoint
        env.setdefault("AWS_ACCESS_KEY_ID", "local")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
        if cfg.with_eventbridge:
            self.events_url = await self._start_eventbridge(cfg)
            env["EVENTS_ENDPOINT_URL"] = self.events_url
        extra = {} if cfg.log_sink is None else {"log_sink": cfg.log_sink}
        self.runtime = LambdaRuntime(
            env,
            functions=cfg.catalog.functions,
            functions_dir=cfg.catalog.functions_dir,
            max_concurrency=cfg.lambda_concurrency,
            **extra,
        )
        self.ws = WebSocketApi(
            cfg.catalog, self.runtime, stage=cfg.stage, limits=cfg.limits, on_event=cfg.on_event
        )
        await self.ws.start(cfg.host, cfg.ws_port)
        self.management.backend = LiveConnections(self.ws)

        self.http = HttpApi(cfg.catalog, self.runtime, cors=cfg.cors, on_event=cfg.on_event)
        runner, port = await start_site(self.http.app(), cfg.host, cfg.http_port)
        self._runners.append(runner)
        self.http_url = f"http://{cfg.host}:{port}"

        if cfg.web_port is not None:
            runner, port = await start_site(web_page_app(self.ws_url, self.http_url), cfg.host, cfg.web_port)
            self._runners.append(runner)
            self.web_url = f"http://{cfg.host}:{port}/"
        if cfg.warm:
            await self.runtime.warm(list(cfg.warm))

    async def _start_eventbridge(self, cfg: GatewayConfig) -> str:
        from local_stack.eventbridge import EventBridgeApi, LocalEventBus

        loop = asyncio.get_running_loop()

        def invoke(function_name: str, event: dict[str, Any]) -> object:
            # Called from the bus's delivery threads; raising marks the attempt failed (retry/DLQ).
            assert self.runtime is not None
            return asyncio.run_coroutine_threadsafe(self.runtime.invoke(function_name, event), loop).result()

        names = {fn.name for fn in cfg.catalog.functions}
        from infra import catalog

        rules = [r for r in catalog.EVENT_RULES if all(t in names for t in r.targets)]
        self.bus = LocalEventBus.from_catalog(
            invoke, rules=rules, name=cfg.env.get("EVENT_BUS_NAME", "chatflow"), region="us-east-1"
        )
        self.bus.start()
        # Catalog schedules (the outbox sweep) fire as EventBridge schedule rules do.
        self.bus.start_schedules([s for s in catalog.SCHEDULES if s.function in names])
        runner, port = await start_site(EventBridgeApi(self.bus).app(), cfg.host, cfg.events_port)
        self._runners.append(runner)
        return f"http://{cfg.host}:{port}"

    async def stop(self) -> None:
        if self.ws is not None:
            await self.ws.stop()  # sends $disconnect for open sockets while functions still run
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.bus is not None:
            await asyncio.to_thread(self.bus.close)
        if self.runtime is not None:
            await self.runtime.close()

    async def invoke(self, function: str, event: dict[str, Any]) -> Any:
        assert self.runtime is not None
        return await self.runtime.invoke(function, event)

    def describe(self) -> dict[str, str]:
        return {
            "websocket": self.ws_url,
            "http": self.http_url,
            "connections": self.management_endpoint,
            "eventbridge": self.events_url,
            "web": self.web_url or "",
        }


class _Deferred:
    """Backend placeholder until the WebSocket API exists (everything is gone)."""

    async def post(self, connection_id: str, data: bytes) -> None:
        from local_stack.connections import ConnectionGone

        raise ConnectionGone(connection_id)

    async def info(self, connection_id: str) -> Any:
        from local_stack.connections import ConnectionGone

        raise ConnectionGone(connection_id)

    async def close(self, connection_id: str) -> None:
        from local_stack.connections import ConnectionGone

        raise ConnectionGone(connection_id)


@dataclass
class RunningGateway:
    gateway: LocalGateway
    loop: BackgroundLoop

    @property
    def ws_url(self) -> str:
        return self.gateway.ws_url

    @property
    def http_url(self) -> str:
        return self.gateway.http_url

    @property
    def management_endpoint(self) -> str:
        return self.gateway.management_endpoint

    def invoke(self, function: str, event: dict[str, Any], timeout: float = 60) -> Any:
        return self.loop.run(self.gateway.invoke(function, event), timeout)

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return self.loop.run(coro, timeout)


@contextlib.contextmanager
def running_gateway(config: GatewayConfig) -> Iterator[RunningGateway]:
    """Start the whole gateway on ephemeral ports in a background thread; stop it on exit."""
    loop = BackgroundLoop("local-gateway")
    gateway = LocalGateway(config)
    try:
        loop.run(gateway.start(), timeout=120)
        yield RunningGateway(gateway, loop)
    finally:
        try:
            loop.run(gateway.stop(), timeout=60)
        finally:
            loop.close()


__all__ = ["FunctionError", "GatewayConfig", "LocalGateway", "RunningGateway", "running_gateway"]
