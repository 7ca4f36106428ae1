"""Fixtures shared by the rooms/messages integration tests (domain and HTTP).

- ``chat``: the container the test's direct service calls go through (chatflow.container, real
  Postgres + Redis): the WebSocket harness's when the test uses ``ws`` (its endpoints), pools of 8
  connections when it uses ``wide_pool``, else one on this run's settings. ``rooms`` and
  ``messages`` are its services.
- ``owner``: a fresh active user (inserted directly; see tests/support/rooms.py).
- ``wide_pool``: ``chat``'s writer/reader pools wide enough for real concurrency in threads.
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

from chatflow.container import Container
from chatflow.domain.identity import Identity
from chatflow.domain.messages import MessageService
from chatflow.domain.rooms import RoomService
from tests.support.apigw import HttpApiClient
from tests.support.identity import http_client
from tests.support.rooms import ApiUser, chat_container, insert_user
from tests.support.ws_harness import WsHarness, ws_harness


@pytest.fixture
def chat(request: pytest.FixtureRequest, chatflow_env: dict[str, str]) -> Iterator[Container]:
    if "ws" in request.fixturenames:
        harness: WsHarness = request.getfixturevalue("ws")
        yield harness.container
        return
    with chat_container(pool_size=8 if "wide_pool" in request.fixturenames else None) as container:
        yield container


@pytest.fixture
def rooms(chat: Container) -> RoomService:
    return chat.rooms


@pytest.fixture
def messages(chat: Container) -> MessageService:
    return chat.messages


@pytest.fixture
def owner(db: psycopg.Connection[dict[str, Any]], chat: Container) -> Identity:
    return insert_user(db)


@pytest.fixture
def wide_pool() -> None:
    """Asks ``chat`` for pools of 8 connections (the Lambda-sized default has 2), so that threads
    really run transactions at the same time."""


@pytest.fixture
def rooms_api(chatflow_env: dict[str, str]) -> HttpApiClient:
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
def room_id(alice: Identity, bob: Identity, rooms: RoomService) -> UUID:
    room = rooms.create_channel(alice, "public", f"ws-{uuid4().hex[:8]}").room
    rooms.join(bob, room.id)
    return room.id
