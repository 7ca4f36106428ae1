"""The container's Redis connection (redis-py): one client, created on first use, and key prefixing.

TLS and auth come from the URL (``rediss://:password@host:6379/0``) or, in the cloud, from the
auth secret that ``password_resolver`` fetches (chatflow.secrets.redis_password_resolver_for picks
it from the settings). The function's container owns one :class:`RedisConnection` and hands it to
the Redis adapters; only they know key formats.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from chatflow.settings import Settings

#: Credential hook: returns the AUTH token (from Secrets Manager); None = use the URL's password.
PasswordResolver = Callable[[Settings], str | None]


class RedisConnection:
    """One redis-py client per container (created on first use: no I/O before) and the key prefix."""

    def __init__(
        self,
        settings: Settings,
        *,
        password_resolver: PasswordResolver | None = None,
        client: redis.Redis[str] | None = None,
    ) -> None:
        self._settings = settings
        self.password_resolver = password_resolver
        self._client = client
        self._lock = threading.Lock()
        #: Every key is prefixed, so tests and several stacks can share one server.
        self.prefix = settings.redis_key_prefix

    @property
    def client(self) -> redis.Redis[str]:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self) -> redis.Redis[str]:
        settings = self._settings
        resolver = self.password_resolver
        password = resolver(settings) if resolver is not None else None
        client: redis.Redis[str] = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_socket_timeout_s,
            socket_connect_timeout=settings.redis_connect_timeout_s,
            health_check_interval=30,
            decode_responses=True,
            # redis-py's default retries timeouts 10 times with backoff (~30 s against a hung
            # server). Outages must answer fast (docs/protocol.md, "Outages"): one immediate
            # retry for a dropped connection (a restarted server, a stale pooled socket), none
            # for a timeout.
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )
        if password:  # a resolved secret overrides the URL's password
            client.connection_pool.connection_kwargs["password"] = password
        return client

    def key(self, *parts: object) -> str:
        """A namespaced key: ``<prefix>part1:part2``."""
        return self.prefix + ":".join(str(p) for p in parts)

    def close(self) -> None:
        """Close the client (SnapStart before-snapshot, tests); a new one is made on next use."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
