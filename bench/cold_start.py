"""Cold start of every Lambda function (infra/catalog.py FUNCTIONS) vs the issue's baseline.

    .venv/bin/python bench/cold_start.py --repeat 5          # or: make bench-cold
    .venv/bin/python bench/cold_start.py --only authorizer,ws_ping --repeat 3

Each sample is a FRESH interpreter (bench/_cold_child.py) that imports the function's handler
module by file path, as Lambda does, and runs its FIRST invocation with a realistic event against
this machine's Postgres and Redis -- so an import deferred into the handler is still paid. The
baseline, measured the same way in the same run, imports boto3, Powertools (Logger, Metrics,
Tracer, APIGatewayHttpResolver), pydantic, pyjwt, psycopg and redis and creates an ``events`` and
an ``apigatewaymanagementapi`` client. Targets are interleaved round by round so machine noise
spreads evenly; one discarded warm-up round first fills a private bytecode cache
(``PYTHONPYCACHEPREFIX``; Lambda's layer ships compiled ``.pyc`` too).

Reported per function: median and min of the in-process time (import + first invoke) and of
the whole process wall time, peak RSS, the ratio to the baseline, a verdict against the aims of
docs/performance.md, and the heavy modules present after the invocation -- flagged when the
function's catalog ``needs`` do not justify them.

Set-up (all removed at the end): a throwaway database (migrated) and Redis key prefix, a fresh
ES256 key pair, users/room/memberships/connections seeded through the real HTTP handler and
domain code, the local @connections server (recording backend) and the local EventBridge
PutEvents endpoint in background threads -- functions that post or publish do real HTTP on
loopback, never to AWS -- plus a loopback sink for CloudFormation responses and X-Ray segments.

``--tracing lambda`` (default) runs children with the environment of a deployed function with
active tracing (``LAMBDA_TASK_ROOT``, ``_X_AMZN_TRACE_ID``): Powertools' Tracer is really on.
``--tracing off`` sets ``POWERTOOLS_TRACE_DISABLED=true`` as the test suite does.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.server
import json
import os
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.catalog import FUNCTIONS, RUNTIME_ENVIRONMENT, Function, Need  # noqa: E402

CHILD = Path(__file__).resolve().parent / "_cold_child.py"
#: ``--pycache none``: children read and write no bytecode (a prefix directory that stays empty).
NO_BYTECODE = "<none>"
SAMPLES = ROOT / "events" / "samples"
ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BASELINE = "baseline"
#: Row of a SnapStart function's second variant: initialized as for a snapshot (everything its
#: init does when ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``); its first invocation is the
#: restore figure. The function's own row is an on-demand cold start: SnapStart off.
RESTORE_SUFFIX = " (SnapStart init)"
#: ``--http-first``: which request is http_api's first (each loads one area on demand).
HTTP_FIRST_REQUESTS = ("create_room", "history", "me", "notifications", "presence")
#: ``--instructions``: the interpreter and the child script alone, subtracted from every count.
NULL = "null"

# --- aims (docs/performance.md, issue #2 "Performance") ----------------------------------------

#: Needs that make a function talk to AWS through the AWS SDK (botocore; the issue's aims say
#: "boto3"). IAM-token Postgres and *_SECRET_ARN secrets only exist in the cloud and are off here.
BOTO3_NEEDS = frozenset(
    {Need.MANAGE_CONNECTIONS, Need.PUT_EVENTS, Need.FANOUT_QUEUE, Need.NOTIFY_TOPIC, Need.JWT_KEYGEN}
)
AUTHORIZER_AIM = 0.25  # issue 13 (was 0.30)
LIGHT_AIM = 0.50
DEFAULT_AIM = 0.85
#: SnapStart functions: their first invocation after init (what a restore leaves on the cold path).
SNAPSTART_RESTORE_AIM = 0.30


def aim_of(fn: Function) -> tuple[float, str]:
    """The function's budget as a fraction of the baseline, and why."""
    if fn.name == "authorizer":
        return AUTHORIZER_AIM, "authorizer"
    if not fn.needs & (BOTO3_NEEDS | {Need.POSTGRES}):
        return LIGHT_AIM, "needs neither boto3 nor psycopg"
    return DEFAULT_AIM, "other"


def _http_routed(fn: Function) -> bool:
    from infra.catalog import HTTP_ROUTES

    return any(route.function == fn.name for route in HTTP_ROUTES)


def _event_target(fn: Function) -> bool:
    from infra.catalog import EVENT_RULES

    return any(fn.name in rule.targets for rule in EVENT_RULES)


def _ws_actions(fn: Function) -> bool:
    from infra.catalog import WS_ACTIONS, WS_ROUTES

    return any(r.function == fn.name and r.route_key in WS_ACTIONS for r in WS_ROUTES)


@dataclass(frozen=True)
class Watched:
    """A heavy module looked for in every child after its first invocation."""

    #: The module whose presence means the cost was paid (e.g. ``botocore.session``, not the
    #: top-level ``botocore`` package Powertools imports for a version probe).
    probe: str
    #: When a function may import it.
    reason: str
    allowed: Callable[[Function, bool], bool]


def _validates(fn: Function) -> bool:
    return _http_routed(fn) or _ws_actions(fn) or _event_target(fn) or Need.PUT_EVENTS in fn.needs


_JWT = frozenset({Need.JWT_SIGN, Need.JWT_VERIFY})

#: Display name -> what to look for. A watched module present after the first invocation that
#: its function's catalog needs do not justify is flagged (``allowed(fn, tracing)`` is False).
WATCH: dict[str, Watched] = {
    # AWS clients are built with botocore directly (boto3 only adds its session layer and
    # s3transfer); boto3 remains for migrate's jwt-keys action and cloud-only helpers.
    "boto3": Watched("boto3", "jwt_keygen (migrate)", lambda f, t: Need.JWT_KEYGEN in f.needs),
    "botocore": Watched("botocore.session", "an AWS need", lambda f, t: bool(f.needs & BOTO3_NEEDS)),
    "psycopg": Watched("psycopg", "postgres", lambda f, t: Need.POSTGRES in f.needs),
    "psycopg_pool": Watched("psycopg_pool", "postgres", lambda f, t: Need.POSTGRES in f.needs),
    "redis": Watched("redis", "redis", lambda f, t: Need.REDIS in f.needs),
    "jwt": Watched("jwt", "jwt_sign / jwt_verify", lambda f, t: bool(f.needs & _JWT)),
    "cryptography": Watched(
        "cryptography.hazmat.primitives.asymmetric.ec",
        "jwt_sign / jwt_verify / jwt_keygen",
        lambda f, t: bool(f.needs & (_JWT | {Need.JWT_KEYGEN})),
    ),
    "pydantic": Watched(
        "pydantic.main",
        "validated input or events: HTTP routes, WS chat actions, EventBridge target, put_events",
        lambda f, t: _validates(f),
    ),
    "powertools.event_handler": Watched(
        "aws_lambda_powertools.event_handler.api_gateway", "HTTP routes", lambda f, t: _http_routed(f)
    ),
    "powertools.parser": Watched(
        "aws_lambda_powertools.utilities.parser", "validated input or events", lambda f, t: _validates(f)
    ),
    # Tracing is chatflow.observability's own X-Ray emitter (the SDK costs ~0.45x of the baseline).
    "aws_xray_sdk": Watched("aws_xray_sdk.core", "never (chatflow.observability traces)", lambda f, t: False),
    "requests": Watched("requests", "never (botocore uses urllib3)", lambda f, t: False),
    "aiohttp": Watched("aiohttp", "never (local_stack only)", lambda f, t: False),
    "local_stack": Watched("local_stack", "never: handlers must not know where they run", lambda f, t: False),
    "infra": Watched("infra", "never: handlers must not know where they run", lambda f, t: False),
    "tests": Watched("tests", "never", lambda f, t: False),
}


def unjustified(fn: Function, heavy: list[str], tracing: bool) -> list[str]:
    """The watched modules ``fn`` imported although its catalog needs do not justify them."""
    return [name for name in heavy if name in WATCH and not WATCH[name].allowed(fn, tracing)]


# --- measurements ---------------------------------------------------------------------------------


class BenchError(RuntimeError):
    """A child failed or its first invocation did not answer as expected: nothing to time."""


@dataclass
class Sample:
    event: Any
    expect: dict[str, Any]
    #: Checked in the parent after the child ran (side effects on loopback servers); None = ok.
    after: Callable[[], str | None] | None = None


@dataclass
class Run:
    in_process_s: float
    cpu_s: float
    import_s: float
    invoke_s: float
    wall_s: float
    process_cpu_s: float
    peak_rss_mb: float
    heavy: list[str]
    modules_loaded: int
    #: Instructions the whole child executed (``--instructions``: under callgrind), else 0.
    instructions: int = 0


@dataclass
class Row:
    target: str
    runs: list[Run] = field(default_factory=list)
    #: Why this target stopped being measured (its first invocation failed), if it did.
    error: str | None = None

    def median(self, attr: str) -> float:
        return float(statistics.median(float(getattr(r, attr)) for r in self.runs))

    def minimum(self, attr: str) -> float:
        return min(float(getattr(r, attr)) for r in self.runs)

    @property
    def heavy(self) -> list[str]:
        return sorted({name for r in self.runs for name in r.heavy})


# --- loopback sinks ----------------------------------------------------------------------------------


class _LoopbackAws(http.server.BaseHTTPRequestHandler):
    """Two AWS endpoints the bench cannot run for real, on loopback (fakes, and said so):

    * ``PUT /cfn-response``: CloudFormation's pre-signed response URL (records each body);
    * ``POST /`` with ``Action=Publish``: SNS Publish over the query protocol, answered as SNS
      does (a ``MessageId``), so the notifications function really hands off over HTTP.
    """

    cfn: list[dict[str, Any]] = []
    sns: list[dict[str, str]] = []

    def _answer(self, status: int, body: bytes = b"", content_type: str = "text/xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_PUT(self) -> None:
        body = self._body()
        with contextlib.suppress(ValueError):
            type(self).cfn.append(json.loads(body or b"{}"))
        self._answer(200)

    def do_POST(self) -> None:
        params = dict(urllib.parse.parse_qsl(self._body().decode()))
        if params.get("Action") != "Publish" or not params.get("TopicArn"):
            self._answer(400, b"<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>")
            return
        type(self).sns.append(params)
        self._answer(
            200,
            b'<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>'
            + f"<MessageId>{uuid.uuid4()}</MessageId></PublishResult><ResponseMetadata>".encode()
            + f"<RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></PublishResponse>".encode(),
        )

    def log_message(self, format: str, *args: Any) -> None:
        return


@dataclass
class LoopbackAws:
    url: str
    cfn: list[dict[str, Any]]
    sns: list[dict[str, str]]


@contextlib.contextmanager
def loopback_aws() -> Iterator[LoopbackAws]:
    cfn: list[dict[str, Any]] = []
    sns: list[dict[str, str]] = []
    handler = type("LoopbackAws", (_LoopbackAws,), {"cfn": cfn, "sns": sns})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="loopback-aws", daemon=True)
    thread.start()
    try:
        yield LoopbackAws(f"http://127.0.0.1:{server.server_address[1]}", cfn, sns)
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def udp_sink() -> Iterator[int]:
    """A UDP port that swallows X-Ray segments (the daemon's role in Lambda)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                sock.recv(65536)

    thread = threading.Thread(target=drain, name="xray-sink", daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        sock.close()


# --- the world the functions run against -------------------------------------------------------------


def _keys() -> tuple[str, str]:
    from chatflow.auth.keys import generate_es256_pem_pair

    return generate_es256_pem_pair()


@dataclass
class User:
    identity: Any  # chatflow.domain.identity.Identity
    token: str
    connection_id: str | None = None


class World:
    """Database, Redis prefix, keys, loopback servers, seeded users and room; see module doc."""

    def __init__(self, tracing: bool, http_first: str = "create_room") -> None:
        self.tracing = tracing
        #: http_api's first request (HTTP_FIRST_REQUESTS): an on-demand init loads its area only.
        self.http_first = http_first
        self.tag = secrets.token_hex(4)
        self.db_name = f"chatflow_bench_{self.tag}"
        self.redis_prefix = f"cfbench:{self.tag}:"
        self.env: dict[str, str] = {}
        self.users: dict[str, User] = {}
        self.room_id: Any = None
        self.container: Any = None  # chatflow.container.Container, built once the env is set
        self._stack = contextlib.ExitStack()
        self._saved_env: dict[str, str] = {}

    # -- lifecycle --
    def __enter__(self) -> World:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        import psycopg

        from local_stack.connections import RecordingBackend, running_management_api
        from local_stack.eventbridge import LocalEventBus, running_eventbridge_api

        stack = self._stack
        stack.callback(self._restore_env)
        private, public = _keys()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        stack.callback(self._drop_database)
        stack.callback(self._delete_redis_keys)
        base, _, _ = ADMIN_URL.rpartition("/")
        database_url = f"{base}/{self.db_name}"

        from chatflow.adapters.postgres.migrate import migrate

        migrate(database_url)
        self.backend = RecordingBackend()
        management = stack.enter_context(running_management_api(self.backend))
        # Event targets are the functions measured here; the bus only ingests and archives.
        self.bus = LocalEventBus.from_catalog(
            lambda function_name, event: None, name="chatflow", region="us-east-1"
        )
        events_api = stack.enter_context(running_eventbridge_api(self.bus))
        self.aws = stack.enter_context(loopback_aws())
        self.xray_port = stack.enter_context(udp_sink())
        self.management_endpoint = management.endpoint_url
        self.env = {
            "ENV": "local",
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": self.redis_prefix,
            "JWT_PRIVATE_KEY": private,
            "JWT_PUBLIC_KEYS": public,
            "WS_MANAGEMENT_ENDPOINT": management.endpoint_url,
            "EVENTS_ENDPOINT_URL": events_api.endpoint_url,
            "EVENT_BUS_NAME": "chatflow",
            # Offline members' notifications are handed to SNS (the loopback stub above).
            "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:chatflow-notifications",
            "AWS_ENDPOINT_URL_SNS": self.aws.url,
            "SERVICE_NAME": "chatflow",
            "POWERTOOLS_SERVICE_NAME": "chatflow",
            "POWERTOOLS_METRICS_NAMESPACE": "ChatflowBench",
            "POWERTOOLS_LOGGER_LOG_EVENT": "false",
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",  # the local endpoints' key pair
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        self._saved_env = dict(os.environ)
        os.environ.update(self.env)
        # The parent seeds with tracing off; children get their own tracing environment.
        os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        from chatflow.container import Container
        from chatflow.settings import get_settings
        from tests.support.settings import reset_settings_cache

        reset_settings_cache()
        # The parent's services (seeding, set-up of each sample), built as the functions build them.
        self.container = Container(get_settings())
        stack.callback(self._close_clients)
        self._seed()

    def _restore_env(self) -> None:
        if self._saved_env:
            os.environ.clear()
            os.environ.update(self._saved_env)

    def _close_clients(self) -> None:
        from tests.support.lambdas import reset_handlers

        self.container.close()
        reset_handlers()  # the seeding loaded the http_api and authorizer functions here

    def _drop_database(self) -> None:
        import psycopg

        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def _delete_redis_keys(self) -> None:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=self.redis_prefix + "*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        finally:
            client.close()

    # -- seeding through the real HTTP handler and domain code --
    def _seed(self) -> None:
        from tests.support.identity import http_client, register

        client = http_client()
        verifier = self.container.token_verifier
        for name in ("alice", "bob", "carol", "dave"):
            pair = register(client, f"{name}{self.tag}")
            token = pair["accessToken"]
            self.users[name] = User(verifier.verify(token), token)
        alice = self.users["alice"]
        resp = client.post("/rooms", token=alice.token, json={"kind": "public", "name": f"bench {self.tag}"})
        if resp.status != 201:
            raise BenchError(f"seeding: POST /rooms -> {resp.status} {resp.body}")
        self.room_id = uuid.UUID(resp.json["id"])
        for name in ("bob", "carol", "dave"):
            resp = client.post(
                f"/rooms/{self.room_id}/members", token=alice.token, json={"handle": f"{name}{self.tag}"}
            )
            if resp.status != 201:
                raise BenchError(f"seeding: add member {name} -> {resp.status} {resp.body}")
        # Alice and Bob are online: their frames go to the recording @connections backend.
        for name in ("alice", "bob"):
            user = self.users[name]
            user.connection_id = self.backend.register()
            self.container.realtime.connect(user.identity, user.connection_id)

    def bob_posts(self) -> int:
        bob = self.users["bob"].connection_id
        return len(self.backend.posted(bob)) if bob else 0

    # -- events --
    def sample(self, fn: Function, rep: int) -> Sample:
        build: Callable[[int], Sample] = getattr(self, f"_sample_{fn.name}")
        return build(rep)

    def _unique(self, rep: int) -> str:
        return f"{self.tag}-{rep}-{secrets.token_hex(3)}"

    def _posted_to_bob(self) -> Callable[[], str | None]:
        before = self.bob_posts()

        def check() -> str | None:
            deadline = time.monotonic() + 2
            while self.bob_posts() <= before and time.monotonic() < deadline:
                time.sleep(0.01)
            return None if self.bob_posts() > before else "nothing was posted to Bob's connection"

        return check

    def _archived(self, detail_type: str) -> Callable[[], str | None]:
        before = sum(1 for e in self.bus.archived() if e.get("detail-type") == detail_type)

        def check() -> str | None:
            now = sum(1 for e in self.bus.archived() if e.get("detail-type") == detail_type)
            return None if now > before else f"no {detail_type} event reached the local bus"

        return check

    def _sample_authorizer(self, rep: int) -> Sample:
        from tests.support.apigw import http_authorizer_event, http_event

        event = http_authorizer_event(
            http_event("GET", "/rooms", token=self.users["alice"].token), ("$request.header.Authorization",)
        )
        return Sample(event, {"equals": {"isAuthorized": True}})

    def _sample_http_api(self, rep: int) -> Sample:
        from tests.support.apigw import http_event

        alice = self.users["alice"]
        auth = {"token": alice.token, "authorizer_context": alice.identity.to_context()}
        if self.http_first == "create_room":
            # A write: Postgres transaction + outbox row + after-commit PutEvents on loopback.
            body = {"kind": "public", "name": f"bench {self._unique(rep)}"}
            event = http_event("POST", "/rooms", json=body, **auth)
            return Sample(event, {"equals": {"statusCode": 201}}, self._archived("room.created"))
        method, path = {
            "history": ("GET", f"/rooms/{self.room_id}/messages"),  # messages area, reader
            "me": ("GET", "/users/me"),  # users area: the status check only
            "notifications": ("GET", "/notifications"),  # notifications area
            "presence": ("GET", f"/rooms/{self.room_id}/presence"),  # presence area, Redis
        }[self.http_first]
        return Sample(http_event(method, path, **auth), {"equals": {"statusCode": 200}})

    def _sample_ws_connect(self, rep: int) -> Sample:
        # Carol's first connection: ban check, registry, presence "online" to Alice and Bob.
        from tests.support.ws_events import connect_event

        carol = self.users["carol"]
        if carol.connection_id:
            self.container.realtime.disconnect(carol.identity.user_id, carol.connection_id)
        carol.connection_id = self.backend.register()
        event = connect_event(carol.identity, carol.connection_id, token=carol.token)
        return Sample(event, {"equals": {"statusCode": 200}}, self._posted_to_bob())

    def _sample_ws_disconnect(self, rep: int) -> Sample:
        # Dave's last connection goes: unregister, presence "offline" to Alice and Bob.
        from tests.support.ws_events import disconnect_event

        dave = self.users["dave"]
        dave.connection_id = self.backend.register()
        self.container.realtime.connect(dave.identity, dave.connection_id)
        event = disconnect_event(dave.identity, dave.connection_id)
        return Sample(event, {"equals": {"statusCode": 200}}, self._posted_to_bob())

    def _sample_ws_default(self, rep: int) -> Sample:
        from tests.support.ws_events import message_event

        alice = self.users["alice"]
        assert alice.connection_id is not None
        frame = {"action": "shout", "requestId": f"r{rep}", "roomId": str(self.room_id)}
        event = message_event(alice.identity, alice.connection_id, frame, route_key="$default")
        return Sample(event, {"equals": {"statusCode": 200}, "body_contains": "unknown_action"})

    def _sample_ws_ping(self, rep: int) -> Sample:
        from tests.support.ws_events import message_event

        bob = self.users["bob"]
        assert bob.connection_id is not None
        event = message_event(bob.identity, bob.connection_id, {"action": "ping", "requestId": f"p{rep}"})
        return Sample(event, {"equals": {"statusCode": 200}, "body_contains": "pong"})

    def _sample_ws_messages(self, rep: int) -> Sample:
        # sendMessage: transaction + outbox + flush (PutEvents) + fan-out to Bob (PostToConnection).
        from tests.support.ws_events import message_event

        alice = self.users["alice"]
        assert alice.connection_id is not None
        frame = {
            "action": "sendMessage",
            "requestId": f"s{rep}",
            "roomId": str(self.room_id),
            "clientMessageId": f"bench-{self._unique(rep)}",
            "body": f"hello @bob{self.tag}, cold start #{rep}",
        }
        event = message_event(alice.identity, alice.connection_id, frame)
        check_bob = self._posted_to_bob()
        check_bus = self._archived("message.created")
        sender = alice.connection_id
        acks_before = self._acks(sender, frame["requestId"])

        def after() -> str | None:
            # The ack is posted to the sender over @connections before the fan-out (no route
            # response, docs/protocol.md).
            acked = self._acks(sender, frame["requestId"]) > acks_before
            return check_bob() or check_bus() or (None if acked else "no ack was posted to the sender")

        return Sample(event, {"equals": {"statusCode": 200}}, after)

    def _acks(self, connection_id: str, request_id: str) -> int:
        return sum(
            1
            for frame in self.backend.posted_json(connection_id)
            if isinstance(frame, dict) and frame.get("type") == "ack" and frame.get("requestId") == request_id
        )

    def _sample_fanout(self, rep: int) -> Sample:
        from chatflow.adapters.sqs_fanout import FanoutJob

        template = json.loads((SAMPLES / "fanout" / "sqs_job.json").read_text())
        frame = {"type": "message", "roomId": str(self.room_id), "seq": rep + 1, "body": "fan-out"}
        job = FanoutJob(self.room_id, frame, (self.users["bob"].identity.user_id,))
        record = template["Records"][0]
        record.update(messageId=str(uuid.uuid4()), body=job.to_json())
        return Sample(template, {"equals": {"batchItemFailures": []}}, self._posted_to_bob())

    def _sample_outbox_relay(self, rep: int) -> Sample:
        # One committed outbox row the after-commit flush did not send (as after a bus outage).
        from chatflow.adapters.postgres import outbox
        from chatflow.events.schemas import MemberJoined

        with self.container.postgres.writer().connection() as conn, conn.transaction():
            outbox.enqueue(
                conn,
                MemberJoined(
                    room_id=self.room_id,
                    user_id=self.users["bob"].identity.user_id,
                    added_by=self.users["alice"].identity.user_id,
                ),
                source=self.container.settings.event_source,
            )
        event = json.loads((SAMPLES / "outbox_relay" / "scheduled.json").read_text())
        event["id"] = str(uuid.uuid4())
        return Sample(event, {"at_least": {"sent": 1}}, self._archived("member.joined"))

    def _message_envelope(self, rep: int) -> dict[str, Any]:
        """The EventBridge envelope of a real message.created (sent through ROOMS' domain code,
        published by the after-commit flush to the local bus, read back from its archive)."""
        message, _ = self.container.messages.send(
            self.users["alice"].identity,
            self.room_id,
            f"env-{self._unique(rep)}",
            f"@bob{self.tag} @dave{self.tag} are you there? #{rep}",
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for envelope in reversed(self.bus.archived()):
                detail = envelope.get("detail") or {}
                wanted = envelope.get("detail-type") == "message.created"
                if wanted and detail.get("message_id") == str(message.id):
                    return copy.deepcopy(envelope)
            time.sleep(0.02)
        raise BenchError("the seeded message.created never reached the local bus")

    def _sample_notifications(self, rep: int) -> Sample:
        # Dave (mentioned) is offline: his notification goes to SNS over loopback HTTP.
        envelope = self._message_envelope(rep)
        before = len(self.aws.sns)

        def after() -> str | None:
            return None if len(self.aws.sns) > before else "no SNS Publish for the offline mention"

        return Sample(envelope, {"equals": {"duplicate": False}}, after)

    def _sample_analytics(self, rep: int) -> Sample:
        return Sample(self._message_envelope(rep), {"equals": {"duplicate": False}})

    def _sample_migrate(self, rep: int) -> Sample:
        event = json.loads((SAMPLES / "migrate" / "cfn_create.json").read_text())
        event["ResponseURL"] = f"{self.aws.url}/cfn-response"
        event["RequestId"] = str(uuid.uuid4())
        event["ResourceProperties"]["Action"] = "migrate"
        before = len(self.aws.cfn)

        def after() -> str | None:
            got = self.aws.cfn[before:]
            ok = any(r.get("Status") == "SUCCESS" for r in got)
            return None if ok else f"CloudFormation response not SUCCESS: {got!r}"[:300]

        return Sample(event, {"equals": {"Status": "SUCCESS"}}, after)

    # -- child environment --
    def child_env(self, fn: Function | None, pycache: str | None, *, restore: bool = False) -> dict[str, str]:
        env = dict(self._saved_env)
        env.update(self.env)
        # An on-demand cold start (what "without SnapStart" means), or -- ``restore`` -- the init
        # of a SnapStart function, whose first invocation is what a restore leaves to pay.
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start" if restore else "on-demand"
        for name in ("POWERTOOLS_TRACE_DISABLED", "POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_LOG_LEVEL"):
            env.pop(name, None)
        env["POWERTOOLS_LOG_LEVEL"] = "INFO"
        if pycache == NO_BYTECODE:
            # As in a layer shipped without .pyc on a read-only /opt: every import compiles.
            env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "chatflow-bench-no-bytecode")
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        elif pycache is not None:
            env["PYTHONPYCACHEPREFIX"] = pycache
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        name = fn.name if fn else BASELINE
        if fn is not None:  # as deployed (infra/functions.py); the naive baseline has no such setting
            env.update(RUNTIME_ENVIRONMENT)
        if self.tracing:
            # What Lambda sets for a function with active tracing: the Tracer really records.
            env.update(
                {
                    "LAMBDA_TASK_ROOT": str(fn.code_dir) if fn else str(CHILD.parent),
                    "AWS_LAMBDA_FUNCTION_NAME": f"chatflow-{name}",
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb if fn else 512),
                    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
                    "_X_AMZN_TRACE_ID": f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
                    f"Parent={secrets.token_hex(8)};Sampled=1",
                    "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{self.xray_port}",
                    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
                }
            )
        else:
            env["POWERTOOLS_TRACE_DISABLED"] = "true"
        return env


# --- running children ------------------------------------------------------------------------------


def run_child(
    world: World,
    fn: Function | None,
    rep: int,
    workdir: Path,
    pycache: str | None,
    *,
    diagnose: str | None = None,
    restore: bool = False,
    callgrind: bool = False,
    null: bool = False,
) -> Run:
    """One fresh process for ``fn`` (None = the baseline). ``diagnose`` ("profile" or
    "importtime") keeps the child's cProfile stats / ``-X importtime`` log in ``workdir``."""
    name = NULL if null else (fn.name if fn else BASELINE) + (RESTORE_SUFFIX if restore else "")
    spec: dict[str, Any] = {
        "target": NULL if null else name,
        "exit_at_once": callgrind,
        "watch": sorted(w.probe for w in WATCH.values()),
        "result_path": str(workdir / f"{name}-{rep}.result.json"),
        "management_endpoint": world.management_endpoint,
    }
    sample: Sample | None = None
    if fn is not None and not null:
        sample = world.sample(fn, rep)
        spec.update(
            module_path=str(fn.module_path),
            handler_attr=fn.handler_attr,
            code_dir=str(fn.code_dir),
            function_name=f"chatflow-{fn.name}",
            memory_mb=fn.memory_mb,
            request_id=str(uuid.uuid4()),
            event=sample.event,
            expect=sample.expect,
        )
    if diagnose == "profile":
        spec["profile_path"] = str(workdir / f"{name}.prof")
    spec_path = workdir / f"{name}-{rep}.spec.json"
    spec_path.write_text(json.dumps(spec))
    log_path = workdir / f"{name}-{rep}.log"
    env = world.child_env(None if null else fn, pycache, restore=restore)
    prefix: list[str] = []
    if callgrind:
        # Deterministic: the same count for the same code, whatever else the machine is doing.
        env["PYTHONHASHSEED"] = "0"
        prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={workdir / (name + '.callgrind')}"]
    with log_path.open("wb") as log:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(
            [
                *prefix,
                sys.executable,
                *(["-X", "importtime"] if diagnose == "importtime" else []),
                str(CHILD),
                str(spec_path),
            ],
            env=env,
            cwd=str(fn.code_dir if fn else CHILD.parent),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    process_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result_path = Path(spec["result_path"])
    if not result_path.exists():
        tail = log_path.read_text(errors="replace")[-2000:]
        last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        raise BenchError(f"{name} (round {rep}): child exited {proc.returncode}: {last}\n{tail}")
    result = json.loads(result_path.read_text())
    probes = {w.probe: name for name, w in WATCH.items()}
    result["heavy"] = sorted(probes[p] for p in result["heavy"])
    if result.get("error"):
        tail = log_path.read_text(errors="replace")[-1500:]
        raise BenchError(f"{name} (round {rep}): first invocation failed: {result['error']}\n{tail}")
    if sample is not None and sample.after is not None:
        problem = sample.after()
        if problem:
            raise BenchError(f"{name} (round {rep}): {problem}")
    return Run(
        in_process_s=result["total_s"],
        cpu_s=result["cpu_s"],
        process_cpu_s=process_cpu,
        import_s=result["import_s"],
        invoke_s=result["invoke_s"],
        wall_s=wall,
        peak_rss_mb=result["peak_rss_mb"],
        heavy=result["heavy"],
        modules_loaded=result["modules_loaded"],
        instructions=_collected(log_path) if callgrind else 0,
    )


def _collected(log_path: Path) -> int:
    """The instruction count callgrind printed for the child ("==pid== Collected : N")."""
    for line in log_path.read_text(errors="replace").splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise BenchError(f"no callgrind count in {log_path.name}")


@dataclass
class Report:
    rows: dict[str, Row]
    functions: list[Function]
    tracing: bool
    repeat: int
    #: 1-minute load average before and after the run (other processes' share of the 2 cores).
    load_average: tuple[float, float] = (0.0, 0.0)
    #: Functions whose first invocation failed (not in ``functions``), with the reason.
    failures: dict[str, str] = field(default_factory=dict)
    #: ``--instructions``: instructions of import + first invocation (callgrind, the interpreter's
    #: own start-up -- the null child's count -- subtracted), per target incl. the baseline.
    instructions: dict[str, int] = field(default_factory=dict)

    def instruction_ratio(self, name: str) -> float:
        return self.instructions[name] / self.instructions[BASELINE]

    @property
    def baseline(self) -> Row:
        return self.rows[BASELINE]

    def ratio(self, name: str, attr: str = "in_process_s") -> float:
        return self.rows[name].median(attr) / self.baseline.median(attr)

    def verdict(self, fn: Function) -> str:
        """Judged on the median in-process wall time; the CPU-time ratio (insensitive to other
        load on a shared machine) qualifies it when the two disagree."""
        aim, _ = aim_of(fn)
        wall_ok = self.ratio(fn.name) <= aim
        cpu_ok = self.ratio(fn.name, "cpu_s") <= aim
        if wall_ok and cpu_ok:
            return "meets"
        if wall_ok:
            return "meets on wall time, not on CPU"
        if cpu_ok:
            return "MISSES on wall time, meets on CPU"
        return "MISSES"

    def flags(self, fn: Function) -> list[str]:
        return unjustified(fn, self.rows[fn.name].heavy, self.tracing)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tracing": self.tracing,
            "repeat": self.repeat,
            "load_average": self.load_average,
            "targets": {},
        }
        out["failures"] = self.failures
        out["instructions"] = self.instructions
        for name, row in self.rows.items():
            if not row.runs:
                continue
            fn = next((f for f in self.functions if f.name == name), None)
            entry: dict[str, Any] = {
                "in_process_median_s": row.median("in_process_s"),
                "in_process_min_s": row.minimum("in_process_s"),
                "import_median_s": row.median("import_s"),
                "invoke_median_s": row.median("invoke_s"),
                "wall_median_s": row.median("wall_s"),
                "wall_min_s": row.minimum("wall_s"),
                "cpu_median_s": row.median("cpu_s"),
                "process_cpu_median_s": row.median("process_cpu_s"),
                "peak_rss_mb_median": row.median("peak_rss_mb"),
                "heavy": row.heavy,
                "runs": [vars(r) for r in row.runs],
            }
            if fn is not None:
                entry.update(
                    ratio=self.ratio(name),
                    wall_ratio=self.ratio(name, "wall_s"),
                    cpu_ratio=self.ratio(name, "cpu_s"),
                    aim=aim_of(fn)[0],
                    verdict=self.verdict(fn),
                    snapstart=fn.snapstart,
                    invoke_ratio=self.rows[name + (RESTORE_SUFFIX if fn.snapstart else "")].median("invoke_s")
                    / self.baseline.median("in_process_s"),
                    unjustified=self.flags(fn),
                    needs=sorted(n.value for n in fn.needs),
                )
            out["targets"][name] = entry
        return out

    def markdown(self) -> str:
        base = self.baseline
        lines = [
            f"Cold start, {self.repeat} fresh processes per target, tracing "
            f"{'on (Lambda environment)' if self.tracing else 'off'}; load average "
            f"{self.load_average[0]:.1f} -> {self.load_average[1]:.1f}. Times in ms, median (min). "
            "Ratios: median / baseline's median, of in-process wall time (the verdict), in-process "
            "CPU time, whole-process wall time.",
            "",
            "| function | in-process (import + 1st invoke) | of which import | in-process CPU "
            "| whole process | peak RSS MB | x baseline: in-process / CPU / process | aim | verdict |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| **baseline** | {_ms(base, 'in_process_s')} | {_ms(base, 'import_s')} "
            f"| {base.median('cpu_s') * 1000:.0f} | {_ms(base, 'wall_s')} "
            f"| {base.median('peak_rss_mb'):.0f} | 1 / 1 / 1 | | |",
        ]
        for fn in self.functions:
            row = self.rows[fn.name]
            aim, _ = aim_of(fn)
            lines.append(
                f"| {fn.name}{' (SnapStart)' if fn.snapstart else ''} | {_ms(row, 'in_process_s')} "
                f"| {_ms(row, 'import_s')} | {row.median('cpu_s') * 1000:.0f} | {_ms(row, 'wall_s')} "
                f"| {row.median('peak_rss_mb'):.0f} | {self.ratio(fn.name):.2f} / "
                f"{self.ratio(fn.name, 'cpu_s'):.2f} / {self.ratio(fn.name, 'wall_s'):.2f} "
                f"| ≤ {aim:.2f} | {self.verdict(fn)} |"
            )
        snap = [fn for fn in self.functions if fn.snapstart]
        if snap:
            lines += [
                "",
                "SnapStart functions: init (imports, settings, Powertools objects, module-level clients) "
                "is in the snapshot; what stays on the cold path after a restore is roughly the first "
                "invocation (connections are opened then), plus the restore itself (not measurable here).",
                "",
                "| function | first invoke after a SnapStart init, median (min) | x baseline | aim "
                "| verdict |",
                "|---|---|---|---|---|",
            ]
            for fn in snap:
                row = self.rows[fn.name + RESTORE_SUFFIX]
                ratio = row.median("invoke_s") / base.median("in_process_s")
                verdict = "meets" if ratio <= SNAPSTART_RESTORE_AIM else "MISSES"
                lines.append(
                    f"| {fn.name} | {_ms(row, 'invoke_s')} | {ratio:.2f} "
                    f"| ≤ {SNAPSTART_RESTORE_AIM:.2f} | {verdict} |"
                )
        lines += [
            "",
            "| function | catalog needs | heavy modules after the 1st invoke | not justified by the needs |",
            "|---|---|---|---|",
        ]
        for fn in self.functions:
            flags = self.flags(fn)
            lines.append(
                f"| {fn.name} | {', '.join(sorted(n.value for n in fn.needs)) or '-'} "
                f"| {', '.join(self.rows[fn.name].heavy) or '-'} "
                f"| {', '.join(f'**{f}**' for f in flags) or 'none'} |"
            )
        if self.instructions:
            lines += [
                "",
                "Instructions executed by import + first invocation (on-demand init), counted by "
                "callgrind -- the same count for the same code whatever else the machine does; the "
                "interpreter's own start-up is subtracted. CPU work only: waiting is not counted.",
                "",
                "| function | instructions (millions) | x baseline | aim | verdict |",
                "|---|---|---|---|---|",
                f"| **baseline** | {self.instructions[BASELINE] / 1e6:.0f} | 1 | | |",
            ]
            for fn in self.functions:
                if fn.name not in self.instructions:
                    continue
                aim, _ = aim_of(fn)
                ratio = self.instruction_ratio(fn.name)
                lines.append(
                    f"| {fn.name} | {self.instructions[fn.name] / 1e6:.0f} | {ratio:.2f} | ≤ {aim:.2f} "
                    f"| {'meets' if ratio <= aim else 'MISSES'} |"
                )
        for name, error in self.failures.items():
            lines += ["", f"**{name} FAILED** (not measured): `{error.splitlines()[0]}`"]
        return "\n".join(lines)


def _ms(row: Row, attr: str) -> str:
    return f"{row.median(attr) * 1000:.0f} ({row.minimum(attr) * 1000:.0f})"


def _row_name(fn: Function | None, restore: bool) -> str:
    return (fn.name if fn else BASELINE) + (RESTORE_SUFFIX if restore else "")


def run_bench(
    functions: list[Function],
    *,
    repeat: int = 5,
    tracing: bool = True,
    warmup: bool = True,
    pycache: str | None = "temp",
    progress: Callable[[str], None] = lambda line: None,
    diagnose: tuple[str, str] | None = None,
    instructions: bool = False,
    http_first: str = "create_room",
) -> Report:
    """Measure ``functions`` and the baseline; see the module docstring."""
    targets: list[tuple[Function | None, bool]] = [(None, False)]
    for fn in functions:
        targets.append((fn, False))
        if fn.snapstart:
            targets.append((fn, True))
    rows = {_row_name(fn, restore): Row(_row_name(fn, restore)) for fn, restore in targets}
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cold-start-")))
        cache: str | None = None
        if pycache == "temp":
            cache = str(workdir / "pycache")
        elif pycache == "none":
            cache = NO_BYTECODE
        elif pycache:
            cache = pycache
        world = stack.enter_context(World(tracing, http_first))

        def measure(target: Function | None, restore: bool, rep: int) -> None:
            row = rows[_row_name(target, restore)]
            if row.error is not None:
                return
            try:
                run = run_child(world, target, rep, workdir, cache, restore=restore)
            except BenchError as exc:
                if target is None:
                    raise
                # One broken function (the tree is shared while others work) must not void the run.
                row.error = str(exc)
                progress(f"{row.target} FAILED, no longer measured: {str(exc).splitlines()[0]}")
                return
            if rep >= 0:
                row.runs.append(run)

        if warmup:
            progress("warm-up round (fills the bytecode cache; not counted)")
            for target, restore in targets:
                measure(target, restore, -1)
        for rep in range(repeat):
            # Rotate the order so no target always runs right after the same neighbour.
            shift = rep % len(targets)
            for target, restore in targets[shift:] + targets[:shift]:
                measure(target, restore, rep)
            progress(f"round {rep + 1}/{repeat} done")
        if diagnose is not None:
            _diagnose(world, diagnose, workdir, cache)
        counts: dict[str, int] = {}
        if instructions:
            progress("instruction counts: one child per target under callgrind (~10-25 s each)")
            null = run_child(world, None, 2000, workdir, cache, callgrind=True, null=True).instructions
            for i, (target, restore) in enumerate(targets):
                name = _row_name(target, restore)
                if restore or rows[name].error is not None:
                    continue
                try:
                    run = run_child(world, target, 2001 + i, workdir, cache, callgrind=True)
                except BenchError as exc:
                    if target is None:
                        raise
                    rows[name].error = str(exc)
                    continue
                counts[name] = run.instructions - null
                progress(f"{name}: {counts[name] / 1e6:.0f} M instructions")
    errors = {
        fn.name: rows[fn.name].error or rows.get(_row_name(fn, True), Row("")).error for fn in functions
    }
    failed = [name for name, error in errors.items() if error is not None]
    return Report(
        rows,
        [fn for fn in functions if fn.name not in failed],
        tracing,
        repeat,
        (load_before, os.getloadavg()[0]),
        {name: errors[name] or "" for name in failed},
        counts,
    )


def _diagnose(world: World, what: tuple[str, str], workdir: Path, cache: str | None) -> None:
    """One more (untimed) child with cProfile or ``-X importtime``; prints where time went."""
    kind, name = what
    fn = next(f for f in FUNCTIONS if f.name == name)
    run_child(world, fn, 999, workdir, cache, diagnose=kind)
    out = sys.stderr
    if kind == "profile":
        import pstats

        print(f"\n--- cProfile of {name}: import + first invoke (top 40 by cumulative time)", file=out)
        pstats.Stats(str(workdir / f"{name}.prof"), stream=out).sort_stats("cumulative").print_stats(40)
        return
    print(f"\n--- -X importtime of {name} (cumulative >= 5 ms; ms cumulative, ms self)", file=out)
    for line in (workdir / f"{name}-999.log").read_text(errors="replace").splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            own_us, cumulative_us, module = line[len("import time:") :].split("|", 2)
            if int(cumulative_us) >= int(os.environ.get("IMPORTTIME_MIN_US", "5000")):
                print(
                    f"{int(cumulative_us) / 1000:7.1f} {int(own_us) / 1000:6.1f} {module.rstrip()}", file=out
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per target (default 5)")
    parser.add_argument("--only", default="", help="comma-separated function names (default: all)")
    parser.add_argument("--tracing", choices=("lambda", "off"), default="lambda")
    parser.add_argument("--no-warmup", action="store_true", help="skip the discarded warm-up round")
    parser.add_argument(
        "--pycache",
        default="temp",
        help="bytecode cache dir (PYTHONPYCACHEPREFIX); 'temp' = a private one removed at the end, "
        "'' = the interpreter's default, 'none' = no bytecode at all (every import compiles)",
    )
    parser.add_argument("--json", dest="json_path", help="also write raw results as JSON here")
    parser.add_argument("--profile", metavar="FUNCTION", help="afterwards, cProfile one more cold start")
    parser.add_argument("--importtime", metavar="FUNCTION", help="afterwards, -X importtime one more")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a function misses its aim")
    parser.add_argument(
        "--http-first",
        choices=HTTP_FIRST_REQUESTS,
        default="create_room",
        help="http_api's first request (default: create_room = POST /rooms)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="afterwards, count each target's instructions under callgrind (deterministic; slow)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind (Debian: apt-get install valgrind)")
    wanted = [n for n in args.only.split(",") if n]
    unknown = sorted(set(wanted) - {fn.name for fn in FUNCTIONS})
    if unknown:
        parser.error(f"unknown function(s): {', '.join(unknown)}")
    functions = [fn for fn in FUNCTIONS if not wanted or fn.name in wanted]
    diagnose: tuple[str, str] | None = None
    for kind in ("profile", "importtime"):
        target = getattr(args, kind)
        if target:
            if target not in {fn.name for fn in functions}:
                parser.error(f"--{kind} {target}: not among the measured functions")
            diagnose = (kind, target)
    started = time.monotonic()
    try:
        report = run_bench(
            functions,
            repeat=args.repeat,
            tracing=args.tracing == "lambda",
            warmup=not args.no_warmup,
            pycache=args.pycache or None,
            progress=lambda line: print(f"  {line} ({time.monotonic() - started:.0f} s)", file=sys.stderr),
            diagnose=diagnose,
            instructions=args.instructions,
            http_first=args.http_first,
        )
    except BenchError as exc:
        print(f"cold-start bench failed: {exc}", file=sys.stderr)
        return 2
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {when}")
    print(report.markdown())
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report.to_json(), indent=2))
    if report.failures:
        return 2
    if args.strict and any(report.verdict(fn) != "meets" for fn in report.functions):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
