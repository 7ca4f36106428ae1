"""Connection pools, one writer and one reader per Lambda container, created lazily.

Writes always go to the writer; reads that tolerate replica lag may use the reader (the Aurora
reader endpoint through RDS Proxy), which is the same code with another DSN.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable

from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from chatflow.settings import Settings, get_settings

_lock = threading.Lock()
_pools: dict[str, ConnectionPool[Connection[DictRow]]] = {}

#: A connection back in the pool for less than this is handed out without the "is it alive?"
#: round trip (psycopg_pool's check_connection: one empty query per checkout). Connections that
#: sat longer -- a Lambda frozen between invocations, a proxy that may have dropped them -- are
#: still checked (and replaced when dead). Saves one round trip per checkout in a busy container.
CHECK_IDLE_AFTER_S = 30.0
_returned_at: weakref.WeakKeyDictionary[Connection[DictRow], float] = weakref.WeakKeyDictionary()


def _note_returned(conn: Connection[DictRow]) -> None:
    """psycopg_pool ``reset`` hook: runs when a connection goes back to the pool."""
    _returned_at[conn] = time.time()


def _check_if_idle(conn: Connection[DictRow]) -> None:
    """psycopg_pool ``check`` hook: ping only connections that sat idle (see CHECK_IDLE_AFTER_S)."""
    returned = _returned_at.get(conn)
    if returned is not None and 0 <= time.time() - returned < CHECK_IDLE_AFTER_S:
        return
    ConnectionPool.check_connection(conn)


#: Cloud hook: returns the DSN to use (e.g. built from a Secrets Manager secret or with an RDS
#: IAM token). None means use the settings' URL as is.
dsn_resolver: Callable[[str, Settings], str] | None = None


def _open(role: str, settings: Settings) -> ConnectionPool[Connection[DictRow]]:
    conninfo: str | Callable[[], str] = settings.database_url if role == "writer" else settings.reader_url
    resolver = dsn_resolver
    if resolver is None:
        # No explicit hook: the settings say whether cloud credentials apply (IAM auth / secret).
        from chatflow.secrets import dsn_resolver_for

        resolver = dsn_resolver_for(settings)
    if resolver is not None:
        # Resolved for EVERY new connection (psycopg_pool accepts a callable): IAM auth tokens
        # expire after 15 min and rotated secrets must be picked up by reconnects.
        def resolved_conninfo() -> str:
            return resolver(role, settings)

        conninfo = resolved_conninfo
    options = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    kwargs: dict[str, object] = {
        "row_factory": dict_row,
        "autocommit": True,
        "options": options,
        "connect_timeout": max(1, int(settings.db_connect_timeout_s)),
        # RDS Proxy pins sessions that use server-side prepared statements; disable them.
        "prepare_threshold": None,
    }
    if settings.db_sslmode:
        kwargs["sslmode"] = settings.db_sslmode
    pool: ConnectionPool[Connection[DictRow]] = ConnectionPool(
        conninfo,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        kwargs=kwargs,
        connection_class=Connection[DictRow],
        timeout=settings.db_connect_timeout_s,
        max_idle=300,
        check=_check_if_idle,
        reset=_note_returned,
        name=f"chatflow-{role}",
        open=False,
    )
    pool.open(wait=True, timeout=settings.db_connect_timeout_s)
    return pool


def get_pool(role: str = "writer", settings: Settings | None = None) -> ConnectionPool[Connection[DictRow]]:
    """The container's pool for ``role`` ("writer" or "reader"); opened on first use."""
    pool = _pools.get(role)
    if pool is None:
        with _lock:
            pool = _pools.get(role)
            if pool is None:
                pool = _open(role, settings or get_settings())
                _pools[role] = pool
    return pool


def writer() -> ConnectionPool[Connection[DictRow]]:
    return get_pool("writer")


def reader() -> ConnectionPool[Connection[DictRow]]:
    return get_pool("reader")


def close_pools() -> None:
    """Close every pool (tests; SnapStart before-snapshot, so restore reconnects)."""
    with _lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()
