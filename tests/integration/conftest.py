"""Fixtures shared by the rooms/messages integration tests (domain and HTTP).

- ``chat``: the rooms/messages services rebuilt from this run's settings (and again afterwards).
- ``owner``: a fresh active user (inserted directly; see tests/support/rooms.py).
- ``wide_pool``: writer/reader pools wide enough for real concurrency in threads.
- ``rooms_api``: the real authorizer + http_api handlers behind an API Gateway-like client.
- ``make_api_user``: a fresh user with a real access token, calling ``rooms_api``.
- ``ws``, ``alice``, ``bob``, ``room_id``: the WebSocket handlers behind a harness (real Redis,
  Postgres and a local @connections endpoint), two members and their public room.

A module that defines a fixture of the same name uses its own (pytest's usual override).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from chatflow.domain import rooms
from chatflow.domain.identity import Identity
from tests.support.apigw import HttpApiClient
from tests.support.identity import http_client
from tests.support.rooms import ApiUser, insert_user, wide_writer_pool
from tests.support.ws_harness import WsHarness, ws_harness


@pytest.fixture
def chat(chatflow_env: dict[str, str]) -> Iterator[None]:
    rooms.reset_services()
    yield
    rooms.reset_services()


@pytest.fixture
def owner(db: psycopg.Connection[dict[str, Any]], chat: None) -> Identity:
    return insert_user(db)


@pytest.fixture
def wide_pool(chat: None) -> Iterator[None]:
    with wide_writer_pool():
        yield


@pytest.fixture
def rooms_api(chat: None) -> HttpApiClient:
    return http_client()


@pytest.fixture
def make_api_user(rooms_api: HttpApiClient, db: psycopg.Connection[dict[str, Any]]) -> Callable[..., ApiUser]:
    """``make_api_user(handle=..., role=..., status=...)`` -> a new user with a token."""

    def make(**kw: Any) -> ApiUser:
        return ApiUser(rooms_api, insert_user(db, **kw))

    return make


@pytest.fixture
def ws(chatflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[WsHarness]:
    with ws_harness(monkeypatch) as harness:
        yield harness


@pytest.fixture
def alice(db: psycopg.Connection[dict[str, Any]], ws: WsHarness) -> Identity:
    return insert_user(db)


@pytest.fixture
def bob(db: psycopg.Connection[dict[str, Any]], ws: WsHarness) -> Identity:
    return insert_user(db)


@pytest.fixture
def room_id(alice: Identity, bob: Identity) -> UUID:
    room = rooms.create_channel(alice, "public", f"ws-{uuid4().hex[:8]}").room
    rooms.join(bob, room.id)
    return room.id
