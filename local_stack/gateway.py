"""The local gateway: WebSocket API + HTTP API + @connections + EventBridge/SQS/Lambda over one
Lambda runtime.

Everything runs on one asyncio loop; functions run in worker processes (local_stack.lambda_runtime).
Ports (0 = ephemeral): WebSocket, HTTP API, @connections management API, the AWS endpoint
(EventBridge, SQS, Lambda), web page. Workers get ``WS_MANAGEMENT_ENDPOINT`` /
``EVENTS_ENDPOINT_URL`` pointing at this gateway, so handlers reach it through their ordinary boto3
clients, as they reach AWS in the cloud -- signed with the local key pair, which the endpoints
verify (SigV4) unless ``verify_sigv4`` is off.

EventBridge rule targets reach functions as in AWS: handed to Lambda's asynchronous queue
(local_stack.lambda_async) with the rule's retry policy and DLQ covering only that hand-off, and the
function's own EventInvokeConfig (retries, on-failure queue) covering its failures. The DLQs and
on-failure queues are local SQS queues with the catalog's names, served on the AWS endpoint.

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

from infra import catalog as declared
from local_stack.background import BackgroundLoop
from local_stack.catalog_view import GatewayCatalog
from local_stack.connections import ManagementApi, start_site
from local_stack.http_api import CorsConfig, HttpApi
from local_stack.lambda_async import AsyncLambda, AsyncTiming
from local_stack.lambda_runtime import FunctionError, LambdaRuntime
from local_stack.scheduler import Backoff
from local_stack.sigv4 import DEFAULT_KEY_PAIR, SigV4Config
from local_stack.sqs import LOCAL_ACCOUNT, LocalQueues
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
    #: The local key pair: functions sign with it; the AWS endpoints accept only it.
    key_pair: tuple[str, str] = DEFAULT_KEY_PAIR
    #: Verify SigV4 on @connections and the AWS endpoint (off: tools that cannot sign).
    verify_sigv4: bool = True
    #: Compression of Lambda's async-invocation durations (retry waits, maximum event age).
    async_timing: AsyncTiming = field(default_factory=AsyncTiming)
    #: EventBridge's delivery backoff (compressed; None: the bus default).
    event_backoff: Backoff | None = None
    #: Serve the AWS endpoint (EventBridge, SQS, Lambda API) and run the bus.
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
        self.async_lambda: AsyncLambda | None = None
        self.queues: LocalQueues | None = None
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

    @property
    def region(self) -> str:
        env = self.config.env
        return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"

    @property
    def sigv4(self) -> SigV4Config | None:
        if not self.config.verify_sigv4:
            return None
        return SigV4Config.single(*self.config.key_pair, region=self.region)

    @property
    def name_prefix(self) -> str:
        """Physical-name prefix of this stack's queues, as the CDK app names an environment's."""
        return declared.name_prefix(self.config.env.get("ENV", "local"))

    async def start(self) -> None:
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        # @connections first: its URL goes into the functions' environment.
        placeholder = _Deferred()
        self.management = ManagementApi(
            placeholder, stage=cfg.stage, latency_s=cfg.management_latency_s, sigv4=self.sigv4
        )
        runner, port = await start_site(self.management.app(), cfg.host, cfg.management_port)
        self._runners.append(runner)
        self.management_url = f"http://{cfg.host}:{port}"

        env = dict(cfg.env)
        env["WS_MANAGEMENT_ENDPOINT"] = self.management_endpoint
        # As a Lambda role's credentials in the cloud: the functions sign with the local key pair
        # (never a developer's own keys or session token), which the endpoints verify.
        for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
            env.pop(name, None)
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = cfg.key_pair
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = self.region
        if cfg.with_eventbridge:
            self.events_url = await self._start_aws_endpoint(cfg)
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

    async def _start_aws_endpoint(self, cfg: GatewayConfig) -> str:
        """Queues, Lambda's async queue, the bus and the endpoint serving them (the runtime is
        created later: only its invoke is needed, once events flow)."""
        from local_stack.eventbridge import LocalEventBus
        from local_stack.eventbridge.http_api import events_endpoint
        from local_stack.lambda_api import PREFIXES, LambdaApi

        loop = asyncio.get_running_loop()
        names = {fn.name for fn in cfg.catalog.functions}
        rules = tuple(r for r in declared.EVENT_RULES if all(t in names for t in r.targets))
        schedules = tuple(s for s in declared.SCHEDULES if s.function in names) if cfg.with_schedules else ()
        problems = declared.catalog_problems(cfg.catalog.functions, rules, schedules)
        if problems:
            raise ValueError("catalog problems: " + "; ".join(problems))
        self.queues = queues = LocalQueues(region=self.region, account=LOCAL_ACCOUNT)
        prefix = self.name_prefix

        def run(function_name: str, event: dict[str, Any]) -> object:
            # Called from Lambda's async-queue threads: one invocation on the gateway's runtime.
            assert self.runtime is not None
            return asyncio.run_coroutine_threadsafe(self.runtime.invoke(function_name, event), loop).result()

        self.async_lambda = async_lambda = AsyncLambda.for_functions(
            run,
            cfg.catalog.functions,
            queues=queues,
            name_prefix=prefix,
            region=self.region,
            timing=cfg.async_timing,
        ).start()
        extra: dict[str, Any] = {} if cfg.event_backoff is None else {"backoff": cfg.event_backoff}
        self.bus = LocalEventBus.from_catalog(
            self.async_lambda,
            rules=rules,
            name=cfg.env.get("EVENT_BUS_NAME", "chatflow"),
            region=self.region,
            name_prefix=prefix,
            queues=queues,
            **extra,
        )
        self.bus.start()
        # Catalog schedules (the outbox sweep) fire as EventBridge schedule rules do.
        self.bus.start_schedules(schedules)
        endpoint, app = events_endpoint(self.bus, self.sigv4)

        def runtime() -> LambdaRuntime:
            # Created after this endpoint: the functions' environment needs its URL first.
            assert self.runtime is not None
            return self.runtime

        lambda_api = LambdaApi(
            runtime,
            self.async_lambda,
            failure_queue_arn=lambda fn: queues.arn(q) if (q := async_lambda.failure_queue(fn)) else None,
            region=self.region,
            account=LOCAL_ACCOUNT,
        )
        lambda_api.add_routes(app)
        endpoint.rest_prefixes.extend((p, "lambda") for p in PREFIXES)
        runner, port = await start_site(app, cfg.host, cfg.events_port)
        self._runners.append(runner)
        url = f"http://{cfg.host}:{port}"
        queues.endpoint_url = url
        return url

    async def stop(self) -> None:
        if self.ws is not None:
            await self.ws.stop()  # sends $disconnect for open sockets while functions still run
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.bus is not None:
            await asyncio.to_thread(self.bus.close)
        if self.async_lambda is not None:
            await asyncio.to_thread(self.async_lambda.close)
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
            "aws": self.events_url,
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
