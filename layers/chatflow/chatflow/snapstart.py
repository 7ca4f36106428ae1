"""Lambda SnapStart runtime hooks: no connection survives the snapshot.

SnapStart (Python 3.12+, catalog ``snapstart=True``) snapshots the initialized execution
environment and resumes copies of it, possibly hours later and many times over. What was done at
init -- imports, settings, Powertools objects, pydantic models -- is then free; an open TCP/TLS
connection is not: the server has long dropped it, and every restored copy would share the same
socket state. So, before the snapshot, the Postgres pools and the Redis client are closed; both are
created lazily, so the first request after a restore opens fresh ones (RDS Proxy: a new IAM
token). After the restore, the ``random`` module is re-seeded so restored copies do not replay the
same sequence (``secrets``/``uuid4`` read the OS entropy pool and need nothing).

Handlers that run with SnapStart import this module at the top (``import chatflow.snapstart``).
The hooks come from ``snapshot_restore_py``, which the Lambda runtime provides; where it is absent
(local runs, tests, runtimes without SnapStart) importing this module does nothing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

logger = logging.getLogger(__name__)

_registered = False


def close_connections() -> None:
    """Close every connection the container holds (pools and Redis are re-created lazily)."""
    from chatflow.adapters.postgres.pool import close_pools
    from chatflow.adapters.redis_client import close_redis

    close_pools()
    close_redis()


def reseed() -> None:
    random.seed()


def register() -> bool:
    """Register the hooks once; False when SnapStart's hook library is not available."""
    global _registered
    if _registered:
        return True
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    before: Callable[[Callable[[], None]], object] = register_before_snapshot
    after: Callable[[Callable[[], None]], object] = register_after_restore
    before(close_connections)
    after(reseed)
    _registered = True
    logger.debug("SnapStart hooks registered")
    return True


register()
