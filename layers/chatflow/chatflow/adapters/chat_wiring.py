"""Composition root of rooms and messages: the domain services wired to Postgres and Redis.

:func:`chatflow.domain.rooms.services` loads this module by name on first use, once per
container; tests may install other services with ``chatflow.domain.rooms.use_services``.
"""

from __future__ import annotations

from chatflow.adapters.postgres.messages_repo import PostgresMessageRepository
from chatflow.adapters.postgres.rooms_repo import PostgresRoomRepository
from chatflow.adapters.redis_cache import RedisRoomCache
from chatflow.domain.messages import MessageService
from chatflow.domain.rooms import RoomService


def build_services() -> tuple[RoomService, MessageService]:
    rooms = RoomService(PostgresRoomRepository(), RedisRoomCache())
    return rooms, MessageService(PostgresMessageRepository(), rooms)
