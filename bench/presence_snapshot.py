"""What a presence snapshot costs (``RealtimeService.room_presence``: the ``joined`` reply, the
``presence`` action, ``GET /rooms/{id}/presence``) by room size and share of members online.

The registry is read in slices of ``max(page + 1, 1000)`` members after the cursor -- per slice
one pipeline of EXISTS (does the member have a registry key at all?) and one of a single-slot
script + the status-cache GET for those that do -- until the page (100 online members) is full,
so a room where few members are online costs up to ``2 * members / 1000`` round trips;
``MAX_MEMBERS_PER_ROOM`` (10,000) bounds it. The room's member
list comes from a plain in-process list here (in the functions: ROOMS' cached member set, one
SMEMBERS), so only the registry part is measured.

Real Redis (``TEST_REDIS_URL``, default 127.0.0.1:6379) under a throwaway key prefix, removed
afterwards.

    .venv/bin/python -m bench.presence_snapshot [--members 100,1000,10000] [--online 0.01,0.2]
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
import uuid
from collections.abc import Collection
from typing import Any, cast

import redis

from bench.realtime_support import REDIS_URL, pct


class _Members:
    """RoomDirectory stand-in: the room's member ids from memory (see the module docstring)."""

    def __init__(self, members: list[uuid.UUID]) -> None:
        self.members = members

    def member_ids(self, room_id: uuid.UUID) -> Collection[uuid.UUID]:
        return self.members

    def room_ids(self, user_id: uuid.UUID) -> Collection[uuid.UUID]:
        return ()

    def members_of(self, room_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Collection[uuid.UUID]]:
        return {}

    def members_among(self, room_id: uuid.UUID, user_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        return set(user_ids) & set(self.members)


def run(sizes: list[int], shares: list[float], iterations: int) -> list[dict[str, Any]]:
    from chatflow.adapters.redis_client import RedisConnection
    from chatflow.adapters.redis_realtime import RedisRealtimeStore
    from chatflow.adapters.redis_user_status import RedisUserStatusCache
    from chatflow.domain.realtime import RealtimeService
    from chatflow.domain.user_models import UserStatus
    from chatflow.settings import Settings

    prefix = f"cfbench:{secrets.token_hex(4)}:"
    settings = Settings(redis_url=REDIS_URL, redis_key_prefix=prefix)
    conn = RedisConnection(settings)
    store, cache = RedisRealtimeStore(conn, settings), RedisUserStatusCache(conn)
    rows: list[dict[str, Any]] = []
    try:
        for size in sizes:
            members = [uuid.uuid4() for _ in range(size)]
            registered = 0
            for share in sorted(shares):
                target = int(size * share)
                for uid in members[registered:target]:  # more of the room comes online
                    cache.put(uid, UserStatus("active", 1.0, "user", "bench"))
                    store.register(uid, secrets.token_urlsafe(10), session_issued_at=time.time())
                registered = max(registered, target)
                directory = _Members(members)
                service = RealtimeService(
                    registry=store, notifier=cast(Any, None), rooms=directory, presence_page_max=100
                )
                room = uuid.uuid4()
                page = service.room_presence(room)
                assert len(page.online) == min(100, registered)
                samples: list[float] = []
                for _ in range(iterations):
                    t0 = time.perf_counter()
                    service.room_presence(room)
                    samples.append(time.perf_counter() - t0)
                rows.append(
                    {
                        "members": size,
                        "online": registered,
                        "listed": len(page.online),
                        "more": page.more,
                        "p50_ms": round(float(pct(samples, 50)) * 1000, 2),
                        "p99_ms": round(float(pct(samples, 99)) * 1000, 2),
                    }
                )
    finally:
        client = conn.client
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        conn.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", default="100,1000,10000")
    parser.add_argument("--online", default="0.01,0.2")
    parser.add_argument("--iterations", type=int, default=50)
    args = parser.parse_args()
    sizes = [int(x) for x in args.members.split(",")]
    shares = [float(x) for x in args.online.split(",")]
    try:
        rows = run(sizes, shares, args.iterations)
    except redis.exceptions.ConnectionError as exc:
        raise SystemExit(f"no Redis at {REDIS_URL}: {exc}") from None
    print(json.dumps(rows, indent=2))
    print("\n| members | online | first page (listed, more) | p50 / p99 ms |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['members']} | {r['online']} | {r['listed']}, {r['more']} | {r['p50_ms']} / {r['p99_ms']} |"
        )


if __name__ == "__main__":
    main()
