"""``python -m local_stack`` (``make dev``): the whole backend on this machine, zero config.

Finds or starts Postgres and Redis (local_stack.services), migrates, generates the dev signing
keys once into ``.local/``, starts the gateway on fixed ports and prints how to use it. Ctrl-C stops
everything (open sockets get their ``$disconnect``, workers and embedded servers are stopped).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from local_stack.gateway import GatewayConfig, LocalGateway
from local_stack.http_api import CorsConfig
from local_stack.services import ServiceUnavailable, dev_signing_keys, function_env, resolve_services
from local_stack.sigv4 import DEFAULT_KEY_PAIR
from local_stack.websocket_api import WsLimits

log = logging.getLogger("local_stack")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=os.environ.get("LOCAL_HOST", "127.0.0.1"))
    parser.add_argument("--http-port", type=int, default=_env_int("LOCAL_HTTP_PORT", 8000))
    parser.add_argument("--ws-port", type=int, default=_env_int("LOCAL_WS_PORT", 8001))
    parser.add_argument("--connections-port", type=int, default=_env_int("LOCAL_CONNECTIONS_PORT", 8002))
    parser.add_argument("--events-port", type=int, default=_env_int("LOCAL_EVENTS_PORT", 8003))
    parser.add_argument("--web-port", type=int, default=_env_int("LOCAL_WEB_PORT", 8080))
    parser.add_argument("--stage", default=os.environ.get("LOCAL_STAGE", "local"))
    parser.add_argument(
        "--idle-timeout", type=float, default=float(os.environ.get("LOCAL_WS_IDLE_TIMEOUT_S", "600"))
    )
    parser.add_argument(
        "--max-lifetime", type=float, default=float(os.environ.get("LOCAL_WS_MAX_LIFETIME_S", "7200"))
    )
    parser.add_argument(
        "--connections-latency",
        type=float,
        default=float(os.environ.get("LOCAL_CONNECTIONS_LATENCY_S", "0")),
        help="artificial delay (seconds) of every @connections answer",
    )
    parser.add_argument(
        "--access-key-id",
        default=os.environ.get("LOCAL_AWS_ACCESS_KEY_ID", DEFAULT_KEY_PAIR[0]),
        help="the local key pair's access key id (functions sign with it; endpoints accept only it)",
    )
    parser.add_argument(
        "--secret-access-key", default=os.environ.get("LOCAL_AWS_SECRET_ACCESS_KEY", DEFAULT_KEY_PAIR[1])
    )
    parser.add_argument(
        "--no-sigv4",
        action="store_true",
        default=os.environ.get("LOCAL_SIGV4", "on").lower() in ("off", "0", "false", "no"),
        help="accept unsigned requests on @connections and the AWS endpoint (for tools that cannot sign)",
    )
    parser.add_argument("--no-migrate", action="store_true", help="skip the SQL migrations")
    parser.add_argument("--quiet", action="store_true", help="do not print the functions' log lines")
    return parser.parse_args(argv)


def banner(gateway: LocalGateway, origins: dict[str, str]) -> str:
    http = gateway.http_url
    key_id, secret = gateway.config.key_pair
    # The secret is printed only when it is the public test default (never a developer's own).
    shown_secret = secret if (key_id, secret) == DEFAULT_KEY_PAIR else "<your --secret-access-key>"
    credentials = (
        f"AWS_ACCESS_KEY_ID={key_id} AWS_SECRET_ACCESS_KEY={shown_secret} AWS_REGION={gateway.region}"
    )
    signing = (
        f"SigV4 required (as AWS): {credentials}"
        if gateway.config.verify_sigv4
        else "SigV4 NOT checked (--no-sigv4 / LOCAL_SIGV4=off)"
    )
    queues = gateway.queues.names() if gateway.queues is not None else []
    queue_lines = "".join(f"  {name}\n" for name in queues) or "  none\n"
    redrive = ""
    if gateway.queues is not None and queues:
        redrive = (
            f"Redrive one: {credentials} \\\n"
            f"  AWS_ENDPOINT_URL={gateway.events_url} python -m chatflow_dev.events redrive \\\n"
            f"  --queue-url {gateway.queues.url(queues[0])}\n"
        )
    return f"""
Chatflow local stack is up (Postgres: {origins["postgres"]}, Redis: {origins["redis"]}).

  HTTP API        {http}
  WebSocket API   {gateway.ws_url}?token=<accessToken>
  Web chat page   {gateway.web_url or "(disabled)"}
  @connections    {gateway.management_endpoint}    (boto3 apigatewaymanagementapi endpoint_url)
  AWS endpoint    {gateway.events_url}    (EventBridge, SQS, Lambda: boto3 endpoint_url / AWS_ENDPOINT_URL)
  {signing}

Dead-letter queues (SQS, named as in the cloud):
{queue_lines}{redrive}
Get a token:
  curl -s -X POST {http}/auth/register -H 'content-type: application/json' \\
       -d '{{"handle":"ada","password":"correct-horse-battery"}}'
  curl -s -X POST {http}/auth/login -H 'content-type: application/json' \\
       -d '{{"handle":"ada","password":"correct-horse-battery"}}'      # -> accessToken
Connect:  python -m websockets '{gateway.ws_url}?token=<accessToken>'
Admin:    python -m chatflow.admin_cli promote ada   (with this DATABASE_URL / REDIS_URL / REDIS_KEY_PREFIX;
          delete also closes live sockets with WS_MANAGEMENT_ENDPOINT={gateway.management_endpoint}
          and the credentials above)

Ctrl-C stops.
"""


def signing_keys() -> tuple[str, str]:
    """``JWT_PRIVATE_KEY`` / ``JWT_PUBLIC_KEYS`` from the environment when both are set (they pass
    through like every variable), else the local pair in ``.local/``."""
    private, public = os.environ.get("JWT_PRIVATE_KEY"), os.environ.get("JWT_PUBLIC_KEYS")
    if private and public:
        return private, public
    return dev_signing_keys()


async def serve(args: argparse.Namespace) -> int:
    try:
        svc = resolve_services()
    except ServiceUnavailable as exc:
        print(f"local_stack: {exc}", file=sys.stderr)
        return 2
    try:
        if not args.no_migrate:
            from chatflow.adapters.postgres.migrate import migrate

            applied = await asyncio.to_thread(migrate, svc.database_url)
            log.info("migrations: %s", ", ".join(applied) if applied else "database is up to date")
        private, public = signing_keys()
        # The environment passes through to the functions (REDIS_KEY_PREFIX, ENV, limits...):
        # an operator tool run with the same environment sees what the functions see.
        env = function_env(svc.database_url, svc.redis_url, private, public)
        # The CLI (admin_cli, migrate) and this process read the same settings as the functions.
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "JWT_PUBLIC_KEYS")})

        def sink(function: str, line: str) -> None:
            if not args.quiet:
                print(f"[{function}] {line}", flush=True)

        config = GatewayConfig(
            env=env,
            host=args.host,
            http_port=args.http_port,
            ws_port=args.ws_port,
            management_port=args.connections_port,
            events_port=args.events_port,
            web_port=args.web_port,
            stage=args.stage,
            limits=WsLimits(idle_timeout_s=args.idle_timeout, max_lifetime_s=args.max_lifetime),
            cors=CorsConfig(allow_origins=tuple(os.environ.get("LOCAL_CORS_ALLOW_ORIGINS", "*").split(","))),
            management_latency_s=args.connections_latency,
            key_pair=(args.access_key_id, args.secret_access_key),
            verify_sigv4=not args.no_sigv4,
            log_sink=sink,
        )
        gateway = LocalGateway(config)
        try:
            await gateway.start()
        except OSError as exc:
            print(
                f"local_stack: cannot listen ({exc}); another `make dev` running? Use --*-port.",
                file=sys.stderr,
            )
            await gateway.stop()
            return 2
        print(banner(gateway, svc.origins), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        assert gateway.runtime is not None
        warming = asyncio.create_task(
            gateway.runtime.warm(["authorizer", "http_api", "ws_connect", "ws_messages"])
        )
        await stop.wait()
        print("\nstopping...", flush=True)
        warming.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await warming
        await gateway.stop()
        return 0
    finally:
        svc.close()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
