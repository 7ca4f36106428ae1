"""Connection pools, one writer and one reader per function container, opened lazily.

Writes always go to the writer; reads that tolerate replica lag may use the reader (the Aurora
reader endpoint through RDS Proxy), which is the same code with another DSN. The function's
container owns one :class:`PostgresPools` and hands it to the Postgres repositories.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable

from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from chatflow.settings import Settings

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


#: Credential hook: the DSN for a role ("writer"/"reader"), e.g. built from a Secrets Manager
#: secret or with an RDS IAM token (chatflow.secrets.dsn_resolver_for picks it from the settings).
DsnResolver = Callable[[str, Settings], str]
Pool = ConnectionPool[Connection[DictRow]]


def open_pool(role: str, settings: Settings, dsn_resolver: DsnResolver | None = None) -> Pool:
    """Open a pool for ``role`` ("writer" or "reader"); ``dsn_resolver`` is called for EVERY new
    connection (psycopg_pool accepts a callable): IAM auth tokens expire after 15 min and rotated
    secrets must be picked up by reconnects."""
    conninfo: str | Callable[[], str] = settings.database_url if role == "writer" else settings.reader_url
    if dsn_resolver is not None:
        resolver = dsn_resolver

        def resolved_conninfo() -> str:
            return resolver(role, settings)

        conninfo = resolved_conninfo
    options = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    kwargs: dict[str, object] = {
        "row_factory": dict_row,
        "autocommit": True,
        "options": options,
        "connect_timeout": max(1, int(settings.db_connect_timeout_s)),
        "tcp_user_timeout": settings.db_tcp_user_timeout_ms,
        # RDS Proxy pins sessions that use server-side prepared statements; disable them.
        "prepare_threshold": None,
    }
    if settings.db_sslmode:
        kwargs["sslmode"] = settings.db_sslmode
    pool: Pool = ConnectionPool(
        conninfo,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        kwargs=kwargs,
        connection_class=Connection[DictRow],
        # A request waits at most this for a connection, then PoolTimeout -> ``unavailable``.
        timeout=settings.db_pool_timeout_s,
        max_idle=300,
        check=_check_if_idle,
        reset=_note_returned,
        name=f"chatflow-{role}",
        open=False,
    )
    try:
        pool.open(wait=True, timeout=settings.db_pool_timeout_s)
    except BaseException:
        # Database unreachable: do not leave a pool (and its reconnecting worker threads) behind
        # for every request of the outage; the next request opens a new one.
        pool.close(timeout=0)
        raise
    return pool


class PostgresPools:
    """The container's writer and reader pools, each opened on first use (no I/O before)."""

    def __init__(self, settings: Settings, dsn_resolver: DsnResolver | None = None) -> None:
        self._settings = settings
        self.dsn_resolver = dsn_resolver
        self._lock = threading.Lock()
        self._pools: dict[str, Pool] = {}

    def get(self, role: str) -> Pool:
        pool = self._pools.get(role)
        if pool is None:
            with self._lock:
                pool = self._pools.get(role)
                if pool is None:
                    pool = open_pool(role, self._settings, self.dsn_resolver)
                    self._pools[role] = pool
        return pool

    def writer(self) -> Pool:
        return self.get("writer")

    def reader(self) -> Pool:
        return self.get("reader")

    def close(self) -> None:
        """Close every pool (SnapStart before-snapshot, tests); they reopen on next use."""
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()
