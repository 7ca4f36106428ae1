"""The one settings object, read from the environment once per Lambda container.

Why a dataclass and not pydantic-settings: importing pydantic and building a model costs
~0.1 s (pydantic-settings ~0.15 s) on this machine, which alone would exceed the authorizer's
cold-start budget (docs/performance.md). The loader below is typed, validates every field and
fails with a message naming the variable, which is all we used pydantic for here.

Secrets: locally every value comes from the environment. In the cloud the CDK app sets the
``*_SECRET_ARN`` variables instead and :mod:`chatflow.secrets` resolves them (Powertools
parameters, cached) -- only in the functions that need them, so the authorizer never imports boto3.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal, get_args, get_origin

Environment = Literal["local", "test", "dev", "staging", "prod"]


class SettingsError(ValueError):
    """A setting is missing or malformed (raised at cold start, never per request)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    # --- deployment ---------------------------------------------------------------
    env: Environment = "local"
    service_name: str = "chatflow"
    aws_region: str = "us-east-1"
    #: Powertools' own variable, kept for operators: when true, no X-Ray subsegments are sent.
    powertools_trace_disabled: bool = False
    #: Powertools' own variable: the CloudWatch namespace of EMF metrics.
    powertools_metrics_namespace: str = "Chatflow"

    # --- Postgres (writer always; reader optional, same code) ------------------------
    database_url: str = "postgresql://postgres@127.0.0.1:5432/chatflow"
    database_reader_url: str | None = None
    #: Secrets Manager secret with {"username","password","host","port","dbname"} (cloud).
    database_secret_arn: str | None = None
    #: Cloud: sign in to RDS Proxy with an IAM auth token (15 min, generated locally by botocore)
    #: instead of a password; the user comes from DATABASE_URL (chatflow.adapters.postgres.iam_auth).
    database_iam_auth: bool = False
    #: RDS Proxy multiplexes; a Lambda container serves one request at a time, so a pool of
    #: one or two connections is right (more only holds proxy slots idle).
    db_pool_min_size: int = 1
    db_pool_max_size: int = 2
    db_connect_timeout_s: float = 5.0
    #: How long a request waits for a pooled connection (also when the pool first opens) before
    #: it is answered ``unavailable``: the outage bound of docs/protocol.md ("Outages"). New
    #: connections keep being attempted in the background (``db_connect_timeout_s`` each).
    db_pool_timeout_s: float = 1.5
    db_statement_timeout_ms: int = 5000
    #: How long data sent to Postgres may stay unacknowledged before the connection is dropped
    #: (libpq ``tcp_user_timeout``): a server cut off by the network (a partition, a lost host)
    #: answers nothing, not even a reset, and the statement timeout is the server's own. Within
    #: the outage bound of docs/protocol.md ("Outages"), far above a VPC's round trip.
    db_tcp_user_timeout_ms: int = 1500
    db_sslmode: str | None = None

    # --- Redis / Valkey ---------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Every key is prefixed, so tests and several stacks can share one server.
    redis_key_prefix: str = "cf:"
    redis_auth_secret_arn: str | None = None
    #: Per Redis command (read/write) and per connection attempt. A command that times out is not
    #: retried (a refused/reset connection is, once, at once): a hung or unreachable Redis is
    #: answered ``unavailable`` within these, never after redis-py's default backoff retries.
    redis_socket_timeout_s: float = 0.5
    redis_connect_timeout_s: float = 0.5

    # --- tokens -------------------------------------------------------------------------
    jwt_issuer: str = "chatflow"
    jwt_audience: str = "chatflow-clients"
    #: ES256 private key (PEM); only the token issuer (HTTP API) needs it.
    jwt_private_key: str | None = None
    jwt_private_key_secret_arn: str | None = None
    #: Public key(s) (PEM, several separated by blank lines for rotation) verifiers use.
    jwt_public_keys: str | None = None
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    jwt_leeway_s: int = 10
    #: Sign-in throttle (docs/auth.md "Brute force"): failures are counted per (handle, source
    #: IP) and per source IP across handles; past the free ones each failure doubles the wait
    #: before the next attempt (429 + Retry-After), from LOGIN_BACKOFF_BASE_S up to
    #: LOGIN_BACKOFF_MAX_S. Counts are forgotten LOGIN_FAILURE_WINDOW_S after the last failure.
    login_free_failures: int = 5
    login_ip_free_failures: int = 50
    login_backoff_base_s: int = 1
    login_backoff_max_s: int = 900
    login_failure_window_s: int = 900
    #: scrypt cost of new password hashes (OWASP: N=2^17, r=8, p=1 -> 128 MiB per hash); older
    #: hashes are upgraded at the next successful sign-in. Tests lower N for speed.
    password_scrypt_log2_n: int = 17
    password_scrypt_r: int = 8
    password_scrypt_p: int = 1
    #: Optional external OIDC issuer (e.g. Cognito): tokens verified through its JWKS.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None

    # --- HTTP API -----------------------------------------------------------------------
    max_request_body_bytes: int = 64 * 1024
    cors_allow_origin: str = "*"

    # --- chat limits -------------------------------------------------------------------
    max_message_chars: int = 4000
    history_page_max: int = 100
    room_cache_ttl_s: int = 300
    #: Caps that bound fan-out, presence audiences and snapshots (409 room_full / too_many_rooms).
    max_members_per_room: int = 10_000
    max_rooms_per_user: int = 1_000

    # --- realtime -----------------------------------------------------------------------
    ws_management_endpoint: str | None = None
    max_connections_per_user: int = 5
    connection_ttl_s: int = 3 * 3600
    presence_ttl_s: int = 15 * 60
    rate_messages_per_10s: int = 20
    rate_typing_per_10s: int = 10
    #: joinRoom / leaveRoom / markRead / resume per connection (a reconnect resumes every room).
    rate_requests_per_10s: int = 100
    #: WebSocket handshakes per USER per minute ($connect answers 429 beyond; burst as large).
    rate_connects_per_minute: int = 30
    #: Online members per presence snapshot page (joinRoom reply, ``presence``, GET .../presence).
    presence_page_max: int = 100
    fanout_max_workers: int = 32
    #: A 410 for a connection registered less than this long ago does not unregister it: its
    #: $connect may still be running (API Gateway answers 410 until $connect has returned).
    gone_grace_s: float = 10.0
    fanout_async_threshold: int = 200
    #: Presence transitions whose audience (co-members of all the user's rooms) is larger go
    #: through the fan-out queue (when configured) instead of being posted inside $connect.
    presence_async_threshold: int = 200
    fanout_queue_url: str | None = None

    # --- events -------------------------------------------------------------------------
    event_bus_name: str = "chatflow"
    event_source: str = "chatflow.chat"
    events_endpoint_url: str | None = None
    notification_topic_arn: str | None = None
    #: The outbox sweep deletes rows published longer ago than this (the archive keeps events).
    outbox_retention_days: int = 7
    #: Consumers' dedupe records; keep longer than the archive's retention (replays).
    processed_events_retention_days: int = 30

    # --- AWS endpoints for local emulation (None = the real AWS endpoints) ---------------
    aws_endpoint_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables named like the fields, upper-cased."""
        environ = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(field.name.upper())
            if raw is None:
                continue
            values[field.name] = _coerce(field.name.upper(), raw, hints[field.name])
        return cls(**values)

    @property
    def reader_url(self) -> str:
        return self.database_reader_url or self.database_url

    @property
    def event_bus_configured(self) -> bool:
        """Whether this process has an event bus to talk to: in the cloud always; locally only
        with an endpoint (the local EventBridge emulator). Without one, every publish and outbox
        flush of a local run would wait on AWS timeouts; outbox rows then wait for a sweep run
        against an emulator (docs/events.md)."""
        if self.env in ("local", "test"):
            return bool(self.events_endpoint_url or self.aws_endpoint_url)
        return True


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _coerce(name: str, raw: str, hint: Any) -> Any:
    origin = get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in get_args(hint) if a is not type(None)]
        if raw == "":
            return None
        return _coerce(name, raw, args[0])
    if origin is Literal:
        allowed = get_args(hint)
        if raw not in allowed:
            raise SettingsError(f"{name}={raw!r}: expected one of {', '.join(allowed)}")
        return raw
    if hint is bool:
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise SettingsError(f"{name}={raw!r}: expected a boolean")
    if hint in (int, float):
        try:
            return hint(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: expected {hint.__name__}") from None
    return raw


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once (cold start) and cached."""
    return Settings.from_env()
