"""The container's Redis client (redis-py), created lazily, with key prefixing.

TLS and auth come from the URL (``rediss://:password@host:6379/0``) or, in the cloud, from the
auth secret resolved by :data:`password_resolver`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis

from chatflow.settings import Settings, get_settings

_lock = threading.Lock()
_client: redis.Redis[str] | None = None

#: Cloud hook: returns the AUTH token (from Secrets Manager); None = use the URL's password.
password_resolver: Callable[[Settings], str | None] | None = None


def get_redis(settings: Settings | None = None) -> redis.Redis[str]:
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                settings = settings or get_settings()
                resolver = password_resolver
                if resolver is None:  # no explicit hook: the settings say whether a secret applies
                    from chatflow.secrets import redis_password_resolver_for

                    resolver = redis_password_resolver_for(settings)
                password = resolver(settings) if resolver is not None else None
                _client = redis.Redis.from_url(
                    settings.redis_url,
                    socket_timeout=settings.redis_socket_timeout_s,
                    socket_connect_timeout=settings.redis_socket_timeout_s,
                    health_check_interval=30,
                    decode_responses=True,
                )
                if password:  # a resolved secret overrides the URL's password
                    _client.connection_pool.connection_kwargs["password"] = password
    return _client


def key(*parts: object, settings: Settings | None = None) -> str:
    """A namespaced key: ``<prefix>part1:part2``."""
    prefix = (settings or get_settings()).redis_key_prefix
    return prefix + ":".join(str(p) for p in parts)


def close_redis() -> None:
    global _client
    with _lock:
        if _client is not None:
            _client.close()
            _client = None
