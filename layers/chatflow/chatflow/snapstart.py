"""Lambda SnapStart runtime hooks: no connection survives the snapshot.

SnapStart (Python 3.12+, catalog ``snapstart=True``) snapshots the initialized execution
environment and resumes copies of it, possibly hours later and many times over. What was done at
init -- imports, settings, Powertools objects, pydantic models -- is then free; an open TCP/TLS
connection is not: the server has long dropped it, and every restored copy would share the same
socket state. So, before the snapshot, the Postgres pools and the Redis client are closed; both are
created lazily, so the first request after a restore opens fresh ones (RDS Proxy: a new IAM
token). After the restore, the ``random`` module is re-seeded so restored copies do not replay the
same sequence (``secrets``/``uuid4`` read the OS entropy pool and need nothing).

Handlers that run with SnapStart call :func:`register` with their container at init (right after
building it). The hooks come from ``snapshot_restore_py``, which the Lambda runtime provides; where
it is absent (local runs, tests, runtimes without SnapStart) :func:`register` does nothing.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger(__name__)


class HoldsConnections(Protocol):
    def close_connections(self) -> None:
        """Close every pool and client (they are re-created lazily on next use)."""
        ...


def reseed() -> None:
    random.seed()


def init_prepaid() -> bool:
    """True where init runs before any request waits for it -- SnapStart (init is in the
    snapshot), provisioned concurrency -- and outside Lambda (tests, the local stack: the same
    code path every time); False for an on-demand cold start, where a request is waiting."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE", "") != "on-demand"


def register(container: HoldsConnections) -> bool:
    """Close ``container``'s connections before the snapshot and re-seed ``random`` after each
    restore; False when SnapStart's hook library is not available (nothing registered)."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    before: Callable[[Callable[[], None]], object] = register_before_snapshot
    after: Callable[[Callable[[], None]], object] = register_after_restore
    before(container.close_connections)
    after(reseed)
    logger.debug("SnapStart hooks registered")
    return True
