"""Helpers for the rooms/messages tests: users inserted straight into this run's database.

Users belong to IDENTITY; these tests only need rows to hang memberships on, so they insert
them directly (password hash is a placeholder: nobody logs in as these users here).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID, uuid4

import psycopg

from chatflow.domain.identity import Identity

MakeUser = Callable[..., Identity]


def insert_user(
    conn: psycopg.Connection[Any], *, handle: str | None = None, role: str = "user", status: str = "active"
) -> Identity:
    user_id = uuid4()
    handle = handle or f"u{secrets.token_hex(5)}"
    conn.execute(
        """INSERT INTO users (id, handle, display_name, password_hash, role, status)
           VALUES (%s, %s, %s, 'test-only', %s, %s)""",
        (user_id, handle, handle.title(), role, status),
    )
    return Identity(
        user_id=user_id,
        handle=handle,
        role=role,  # type: ignore[arg-type]
        issued_at=int(time.time()),
        token_id=secrets.token_hex(8),
    )


def set_status(conn: psycopg.Connection[Any], user_id: UUID, status: str) -> None:
    conn.execute("UPDATE users SET status = %s WHERE id = %s", (status, user_id))


def access_token(identity: Identity) -> str:
    """A real ES256 access token for ``identity`` signed with this run's key (IDENTITY's signer)."""
    from chatflow.auth.tokens import get_signer

    return get_signer().issue(user_id=identity.user_id, handle=identity.handle, role=identity.role).token


@contextmanager
def wide_writer_pool(size: int = 8) -> Iterator[None]:
    """Reopen the pools with ``size`` connections so that threads really run transactions at the
    same time (the default Lambda-sized pool has 2); restored afterwards."""
    from chatflow.adapters.postgres.pool import close_pools
    from chatflow.domain import rooms
    from chatflow.settings import reset_settings_cache

    saved = os.environ.get("DB_POOL_MAX_SIZE")
    close_pools()
    os.environ["DB_POOL_MAX_SIZE"] = str(size)
    reset_settings_cache()
    rooms.reset_services()
    try:
        yield
    finally:
        close_pools()
        if saved is None:
            os.environ.pop("DB_POOL_MAX_SIZE", None)
        else:
            os.environ["DB_POOL_MAX_SIZE"] = saved
        reset_settings_cache()
        rooms.reset_services()
