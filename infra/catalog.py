"""THE one declaration of Chatflow's functions, routes, authorizers and event rules.

Plain data, no aws_cdk import: the CDK stacks (infra/stacks) and the local gateway (local_stack)
both iterate it, and tests/infra checks the synthesized template agrees with it.
Handler code never imports this module: functions must not know where they run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"


class Need(StrEnum):
    """What a function touches; the CDK app derives VPC placement, IAM and env from it."""

    POSTGRES = "postgres"  # RDS Proxy (writer + reader), DB secret
    REDIS = "redis"  # ElastiCache, auth secret
    JWT_SIGN = "jwt_sign"  # private signing key secret (only the token issuer)
    JWT_VERIFY = "jwt_verify"  # public keys
    MANAGE_CONNECTIONS = "manage_connections"  # execute-api:ManageConnections on the WS API
    PUT_EVENTS = "put_events"  # events:PutEvents on the bus
    FANOUT_QUEUE = "fanout_queue"  # sqs:SendMessage on the fan-out queue
    NOTIFY_TOPIC = "notify_topic"  # sns:Publish on the notification topic
    JWT_KEYGEN = "jwt_keygen"  # writes the signing-key secret (deploy-time bootstrap only)


@dataclass(frozen=True)
class AsyncInvoke:
    """Lambda's asynchronous-invocation settings (``AWS::Lambda::EventInvokeConfig``) of a function
    that event sources invoke asynchronously (EventBridge rules and schedules hand the event to
    Lambda, which queues it): a FAILED invocation is retried ``max_retry_attempts`` times (Lambda
    allows 0-2) while the event is younger than ``max_event_age_s`` (60-21600); what still fails goes
    to the function's on-failure SQS queue (:func:`async_failure_queue_name`). Throttled
    invocations are retried by Lambda until the maximum age without using up retries."""

    max_retry_attempts: int = 2
    max_event_age_s: int = 3600

    def __post_init__(self) -> None:
        if not 0 <= self.max_retry_attempts <= 2:
            raise ValueError(f"MaximumRetryAttempts must be 0-2, not {self.max_retry_attempts}")
        if not 60 <= self.max_event_age_s <= 21600:
            raise ValueError(f"MaximumEventAgeInSeconds must be 60-21600, not {self.max_event_age_s}")


@dataclass(frozen=True)
class Function:
    name: str
    #: "module.function" inside functions/<name>/, as Lambda's handler setting.
    handler: str
    description: str
    needs: frozenset[Need] = frozenset()
    memory_mb: int = 512
    timeout_s: int = 10
    #: Extra environment (settings fields upper-cased); the CDK app adds endpoints/secrets.
    environment: dict[str, str] = field(default_factory=dict)
    #: Lambda's reserved concurrency: at most this many concurrent invocations; more are throttled
    #: (429 TooManyRequestsException to synchronous callers, retried for asynchronous events).
    reserved_concurrency: int | None = None
    snapstart: bool = False
    #: Set for functions invoked asynchronously (rule targets, schedules); None: never invoked so.
    async_invoke: AsyncInvoke | None = None

    @property
    def code_dir(self) -> Path:
        return FUNCTIONS_DIR / self.name

    @property
    def module_path(self) -> Path:
        return self.code_dir / f"{self.handler.rsplit('.', 1)[0]}.py"

    @property
    def handler_attr(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class Authorizer:
    name: str
    function: str
    #: API Gateway identity sources, e.g. "route.request.querystring.token".
    identity_sources: tuple[str, ...]
    #: 0 disables API Gateway's result cache.
    cache_ttl_s: int = 0


@dataclass(frozen=True)
class WsRoute:
    route_key: str
    function: str
    #: A route response returns the handler's body to the caller as a frame.
    route_response: bool = False
    authorizer: str | None = None


@dataclass(frozen=True)
class HttpRoute:
    method: str
    path: str  # API Gateway syntax: /rooms/{room_id}
    function: str
    authorizer: str | None = None

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class RetryPolicy:
    """EventBridge's per-target RetryPolicy: it covers DELIVERY to the target (for a Lambda target,
    handing the event to the Lambda service); a function that raises is retried by Lambda per the
    function's :class:`AsyncInvoke`, not by this policy."""

    max_attempts: int = 8
    max_event_age_s: int = 3600

    def __post_init__(self) -> None:
        if not 0 <= self.max_attempts <= 185:
            raise ValueError(f"MaximumRetryAttempts must be 0-185, not {self.max_attempts}")
        if not 60 <= self.max_event_age_s <= 86400:
            raise ValueError(f"MaximumEventAgeInSeconds must be 60-86400, not {self.max_event_age_s}")


@dataclass(frozen=True)
class EventRule:
    name: str
    description: str
    #: An EventBridge event pattern (dict form, JSON-serializable).
    pattern: dict[str, object]
    targets: tuple[str, ...]  # function names; every target gets a retry policy and a DLQ
    retry: RetryPolicy = RetryPolicy()


@dataclass(frozen=True)
class Schedule:
    name: str
    function: str
    rate_minutes: int

    @property
    def retry(self) -> RetryPolicy:
        """A late tick is useless (the next one does the work): retry delivery briefly."""
        return RetryPolicy(max_attempts=2, max_event_age_s=max(60, self.rate_minutes * 60))


@dataclass(frozen=True)
class QueueTrigger:
    """An SQS queue (with its own DLQ) feeding a function."""

    name: str
    function: str
    batch_size: int = 10
    visibility_timeout_s: int = 60
    max_receive_count: int = 5


EVENT_SOURCE = "chatflow.chat"
PROJECT = "chatflow"
#: SQS queue names: 1-80 characters, alphanumerics, hyphens and underscores.
_MAX_QUEUE_NAME = 80

_DB_REDIS = frozenset({Need.POSTGRES, Need.REDIS})
_WS = frozenset({Need.REDIS, Need.MANAGE_CONNECTIONS})

#: Environment of every function (infra/functions.py adds it; the cold-start bench's children get
#: it too). No pydantic plugin is used: without this, the first model built scans every installed
#: distribution's entry points for one (importlib.metadata; ~5-15 ms of a cold start).
RUNTIME_ENVIRONMENT: dict[str, str] = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}

FUNCTIONS: tuple[Function, ...] = (
    Function(
        "authorizer",
        "handler.handler",
        "JWT verification for WebSocket $connect and the HTTP API (no I/O beyond key fetch)",
        needs=frozenset({Need.JWT_VERIFY}),
        memory_mb=256,
        timeout_s=5,
    ),
    Function(
        "http_api",
        "handler.handler",
        "HTTP API: auth, users, rooms, members, history, messages, admin, health, OpenAPI",
        needs=_DB_REDIS | {Need.JWT_SIGN, Need.JWT_VERIFY, Need.PUT_EVENTS, Need.MANAGE_CONNECTIONS},
        memory_mb=1024,
        timeout_s=15,
        snapstart=True,
    ),
    Function(
        "ws_connect",
        "handler.handler",
        "$connect: ban check, connection limit, registry, presence online",
        needs=_DB_REDIS | _WS | {Need.PUT_EVENTS},
        # Users wait on the handshake: SnapStart takes imports and wiring off the cold path.
        snapstart=True,
    ),
    Function(
        "ws_disconnect",
        "handler.handler",
        "$disconnect: unregister, presence offline",
        needs=_DB_REDIS | _WS | {Need.PUT_EVENTS},
        # Presence "offline" should not wait on imports: SnapStart takes them off the cold path.
        snapstart=True,
    ),
    Function(
        "ws_default",
        "handler.handler",
        "$default: error frame naming the valid actions",
        memory_mb=256,
        timeout_s=5,
    ),
    Function(
        "ws_ping",
        "handler.handler",
        "ping: refresh the connection and presence TTLs",
        needs=frozenset({Need.REDIS}),
        memory_mb=256,
        timeout_s=5,
    ),
    Function(
        "ws_messages",
        "handler.handler",
        "Chat actions: send/edit/delete, join/leave, typing, markRead, resume",
        needs=_DB_REDIS | _WS | {Need.PUT_EVENTS, Need.FANOUT_QUEUE},
        memory_mb=1024,
        timeout_s=20,
        snapstart=True,
    ),
    Function(
        "fanout",
        "handler.handler",
        "Asynchronous fan-out for large rooms (SQS consumer)",
        # Postgres: re-checking a job's members against the room's CURRENT members reads
        # ROOMS' member cache, which falls back to Postgres on a miss.
        needs=frozenset({Need.POSTGRES, Need.REDIS, Need.MANAGE_CONNECTIONS}),
        memory_mb=1024,
        timeout_s=60,
    ),
    Function(
        "outbox_relay",
        "handler.handler",
        "Scheduled sweep: send outbox rows left unsent to EventBridge",
        needs=frozenset({Need.POSTGRES, Need.PUT_EVENTS}),
        timeout_s=60,
        reserved_concurrency=1,
        async_invoke=AsyncInvoke(),
    ),
    Function(
        "notifications",
        "handler.handler",
        "In-app notifications (unread counts, mentions) for offline members",
        needs=_DB_REDIS | {Need.NOTIFY_TOPIC},
        timeout_s=30,
        async_invoke=AsyncInvoke(),
    ),
    Function(
        "analytics",
        "handler.handler",
        "Messages per room per hour, daily active users, connections opened",
        needs=frozenset({Need.POSTGRES}),
        timeout_s=30,
        async_invoke=AsyncInvoke(),
    ),
    Function(
        "migrate",
        "handler.handler",
        "Deploy-time custom resources (SQL migrations, JWT signing key) and operator commands",
        # Redis + @connections for the operator commands (make admin): the admin CLI writes the
        # user-status cache through and closes a deleted user's live sessions.
        needs=frozenset({Need.POSTGRES, Need.JWT_KEYGEN, Need.REDIS, Need.MANAGE_CONNECTIONS}),
        timeout_s=300,
    ),
)

AUTHORIZERS: tuple[Authorizer, ...] = (
    # Browsers cannot set headers on a WebSocket: the token rides in the query string. API Gateway
    # answers 401 itself when an identity source is missing, so the optional Sec-WebSocket-Protocol
    # token (docs/auth.md) needs this tuple emptied. WebSocket authorizers have no result-cache
    # setting (HTTP APIs only); $connect re-checks bans anyway, so any caching would be safe.
    Authorizer("ws-jwt", "authorizer", ("route.request.querystring.token",), cache_ttl_s=0),
    Authorizer("http-jwt", "authorizer", ("$request.header.Authorization",), cache_ttl_s=0),
)

WS_ACTIONS: tuple[str, ...] = (
    "sendMessage",
    "editMessage",
    "deleteMessage",
    "joinRoom",
    "leaveRoom",
    "typing",
    "markRead",
    "resume",
    "presence",
)

WS_ROUTES: tuple[WsRoute, ...] = (
    WsRoute("$connect", "ws_connect", authorizer="ws-jwt"),
    WsRoute("$disconnect", "ws_disconnect"),
    WsRoute("$default", "ws_default", route_response=True),
    WsRoute("ping", "ws_ping", route_response=True),
    *(WsRoute(action, "ws_messages", route_response=True) for action in WS_ACTIONS),
)

_A = "http-jwt"
HTTP_ROUTES: tuple[HttpRoute, ...] = (
    HttpRoute("GET", "/health/live", "http_api"),
    HttpRoute("GET", "/health/ready", "http_api"),
    HttpRoute("GET", "/openapi.json", "http_api"),
    HttpRoute("GET", "/.well-known/jwks.json", "http_api"),
    HttpRoute("POST", "/auth/register", "http_api"),
    HttpRoute("POST", "/auth/login", "http_api"),
    HttpRoute("POST", "/auth/refresh", "http_api"),
    HttpRoute("POST", "/auth/logout", "http_api"),
    HttpRoute("POST", "/auth/password", "http_api", _A),
    HttpRoute("GET", "/users/me", "http_api", _A),
    HttpRoute("GET", "/rooms", "http_api", _A),
    HttpRoute("POST", "/rooms", "http_api", _A),
    HttpRoute("GET", "/rooms/{room_id}", "http_api", _A),
    HttpRoute("POST", "/rooms/{room_id}/join", "http_api", _A),
    HttpRoute("POST", "/rooms/{room_id}/leave", "http_api", _A),
    HttpRoute("POST", "/rooms/{room_id}/members", "http_api", _A),
    HttpRoute("DELETE", "/rooms/{room_id}/members/{user_id}", "http_api", _A),
    HttpRoute("GET", "/rooms/{room_id}/messages", "http_api", _A),
    HttpRoute("PATCH", "/rooms/{room_id}/messages/{seq}", "http_api", _A),
    HttpRoute("DELETE", "/rooms/{room_id}/messages/{seq}", "http_api", _A),
    HttpRoute("POST", "/rooms/{room_id}/read", "http_api", _A),
    HttpRoute("GET", "/rooms/{room_id}/presence", "http_api", _A),
    HttpRoute("POST", "/dms", "http_api", _A),
    HttpRoute("POST", "/admin/users/{user_id}/ban", "http_api", _A),
    HttpRoute("POST", "/admin/users/{user_id}/unban", "http_api", _A),
    HttpRoute("DELETE", "/admin/users/{user_id}", "http_api", _A),
    HttpRoute("GET", "/notifications", "http_api", _A),
    HttpRoute("POST", "/notifications/read", "http_api", _A),
    HttpRoute("GET", "/admin/analytics", "http_api", _A),
)

EVENT_RULES: tuple[EventRule, ...] = (
    EventRule(
        "notify-on-message-and-join",
        "Message and membership events feed in-app notifications",
        {
            "source": [EVENT_SOURCE],
            "detail-type": ["message.created", "message.edited", "message.deleted", "member.joined"],
        },
        targets=("notifications",),
    ),
    EventRule(
        "analytics-all-chat-events",
        "Every chat event feeds analytics",
        {"source": [EVENT_SOURCE]},
        targets=("analytics",),
    ),
)

SCHEDULES: tuple[Schedule, ...] = (Schedule("outbox-sweep", "outbox_relay", rate_minutes=1),)

# AWS recommends a visibility timeout of ~6x the consumer's timeout (fanout: 60 s), so a job
# still being retried by a slow invocation is not handed to a second one.
QUEUES: tuple[QueueTrigger, ...] = (QueueTrigger("fanout", "fanout", batch_size=1, visibility_timeout_s=360),)


def function(name: str) -> Function:
    for fn in FUNCTIONS:
        if fn.name == name:
            return fn
    raise KeyError(name)


def name_prefix(env: str) -> str:
    """Physical-name prefix of an environment's resources (``chatflow-dev``, ``chatflow-local``)."""
    return f"{PROJECT}-{env}"


def _queue_name(name: str) -> str:
    if len(name) > _MAX_QUEUE_NAME:
        raise ValueError(f"SQS queue name over {_MAX_QUEUE_NAME} characters: {name}")
    return name


def target_dlq_name(prefix: str, rule: str, target: str) -> str:
    """The SQS dead-letter queue of one rule (or schedule) target: EventBridge's DeadLetterConfig,
    where events go that could not be DELIVERED to the target."""
    return _queue_name(f"{prefix}-{rule}-{target}-dlq")


def async_failure_queue_name(prefix: str, function: str) -> str:
    """The on-failure destination of a function's asynchronous invocations: events whose
    invocations kept failing (or grew too old) after Lambda's retries."""
    return _queue_name(f"{prefix}-{function}-async-failures")


def catalog_problems(
    functions: tuple[Function, ...] = FUNCTIONS,
    rules: tuple[EventRule, ...] = EVENT_RULES,
    schedules: tuple[Schedule, ...] = SCHEDULES,
) -> list[str]:
    """Declarations that contradict each other (the CDK app and the local stack refuse to start)."""
    by_name = {fn.name: fn for fn in functions}
    problems: list[str] = []
    targets = [(r.name, t) for r in rules for t in r.targets] + [(s.name, s.function) for s in schedules]
    for source, target in targets:
        fn = by_name.get(target)
        if fn is None:
            problems.append(f"{source}: unknown function {target}")
        elif fn.async_invoke is None:
            problems.append(f"{source}: {target} is invoked asynchronously but declares no async_invoke")
    for fn in functions:
        if fn.reserved_concurrency is not None and fn.reserved_concurrency < 0:
            problems.append(f"{fn.name}: reserved_concurrency must be >= 0")
    return problems
