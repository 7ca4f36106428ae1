"""Helpers for the rooms/messages tests: users inserted straight into this run's database.

Users belong to IDENTITY; these tests only need rows to hang memberships on, so they insert
them directly (password hash is a placeholder: nobody logs in as these users here).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID, uuid4

import psycopg

from chatflow.domain.identity import Identity

if TYPE_CHECKING:
    from chatflow.container import Container
    from tests.support.apigw import HttpApiClient, HttpResponse

MakeUser = Callable[..., Identity]
T = TypeVar("T")

#: The keys of ``chatflow.wire.message_to_dict`` (the one shape HTTP and WebSocket share, contract 3).
MESSAGE_KEYS = frozenset(
    {
        "id",
        "roomId",
        "seq",
        "senderId",
        "senderHandle",
        "clientMessageId",
        "body",
        "createdAt",
        "editedAt",
        "deletedAt",
    }
)


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
    from chatflow.auth.tokens import signer_from_settings
    from chatflow.settings import get_settings

    settings = get_settings()
    assert settings.jwt_private_key is not None
    signer = signer_from_settings(settings, settings.jwt_private_key)
    return signer.issue(user_id=identity.user_id, handle=identity.handle, role=identity.role).token


class ApiUser:
    """A user calling the HTTP API with a real access token: ``user("GET", path)`` or
    ``user.get(path)`` / ``.post`` / ``.patch`` / ``.delete`` (keyword arguments as
    :meth:`HttpApiClient.request`)."""

    def __init__(self, api: HttpApiClient, identity: Identity) -> None:
        self.api = api
        self.identity = identity
        self.token = access_token(identity)

    @property
    def id(self) -> str:
        return str(self.identity.user_id)

    def __call__(self, method: str, path: str, **kw: Any) -> HttpResponse:
        return self.api.request(method, path, token=self.token, **kw)

    def get(self, path: str, **kw: Any) -> HttpResponse:
        return self("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> HttpResponse:
        return self("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> HttpResponse:
        return self("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> HttpResponse:
        return self("DELETE", path, **kw)


def outbox_details(conn: psycopg.Connection[Any], detail_type: str, room_id: UUID) -> list[dict[str, Any]]:
    """The details of this room's outbox rows of one type, in insertion order."""
    rows = conn.execute(
        "SELECT detail FROM outbox WHERE detail_type = %s AND detail->>'room_id' = %s ORDER BY id",
        (detail_type, str(room_id)),
    ).fetchall()
    return [r["detail"] for r in rows]


def run_concurrently(n: int, fn: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``fn(0..n-1)`` in ``n`` threads released together (a barrier); each result or the
    exception it raised, by index."""
    results: list[T | BaseException] = [RuntimeError("not run")] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:  # returned to the test, which asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@contextmanager
def chat_container(*, pool_size: int | None = None) -> Iterator[Container]:
    """A container on this run's settings (``pool_size``: writer/reader pools that wide, so that
    threads really run transactions at the same time; the Lambda-sized default has 2); closed
    afterwards."""
    from chatflow.container import Container
    from chatflow.settings import get_settings

    settings = get_settings()
    if pool_size is not None:
        settings = replace(settings, db_pool_max_size=pool_size)
    container = Container(settings)
    try:
        yield container
    finally:
        container.close()
