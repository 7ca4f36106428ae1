"""What the revocation check costs at fan-out: the recipients' connection lookup with and without it.

Fan-out resolves the live connections of a room's members in ONE Redis pipeline. Since issue 9
that pipeline also reads each member's cached status and each connection's session stamp (a small
Lua script per user, ``RedisRealtimeStore.delivery_targets``), so a revoked session is skipped
without any extra round trip. This measures both lookups on the same data -- N users with 2
connections each, every status cached -- alternating them to cancel drift on a shared machine:

* ``plain``: the lookup before (one ZRANGEBYSCORE per user in one pipeline);
* ``checked``: ``delivery_targets`` (GET status + EVALSHA per user in one pipeline).

Real Redis (``TEST_REDIS_URL``, default 127.0.0.1:6379) under a throwaway key prefix, removed
afterwards.

    .venv/bin/python -m bench.delivery_targets [--users 10,100,1000] [--iterations 300]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from bench.realtime_support import REDIS_URL, pct


def _p(samples: list[float], q: float) -> float:
    return round(float(pct(samples, q)) * 1000, 3)


def run(user_counts: list[int], iterations: int) -> dict[str, Any]:
    from chatflow.adapters.redis_client import RedisConnection
    from chatflow.adapters.redis_realtime import RedisRealtimeStore
    from chatflow.adapters.redis_user_status import RedisUserStatusCache
    from chatflow.domain.user_models import UserStatus
    from chatflow.settings import Settings

    prefix = f"cfbench:{secrets.token_hex(4)}:"
    settings = Settings(redis_url=REDIS_URL, redis_key_prefix=prefix)
    conn = RedisConnection(settings)
    store, cache = RedisRealtimeStore(conn, settings), RedisUserStatusCache(conn)
    client = conn.client
    results: dict[str, Any] = {}
    try:
        for n in user_counts:
            users = [uuid.uuid4() for _ in range(n)]
            for uid in users:
                cache.put(uid, UserStatus("active", 1.0, "user", "bench"))
                for _ in range(2):
                    store.register(uid, secrets.token_urlsafe(10), session_issued_at=time.time())

            def plain(users: list[uuid.UUID] = users) -> int:
                now = int(time.time() * 1000)
                pipe = client.pipeline(transaction=False)
                for uid in users:
                    pipe.zrangebyscore(store._user_zset(uid), f"({now}", "+inf")
                return sum(len(r) for r in pipe.execute())

            def checked(users: list[uuid.UUID] = users) -> int:
                return len(store.delivery_targets(users).live)

            assert plain() == checked() == 2 * n
            samples: dict[str, list[float]] = {"plain": [], "checked": []}
            fns: dict[str, Callable[[], int]] = {"plain": plain, "checked": checked}
            for i in range(iterations):
                order = ("plain", "checked") if i % 2 == 0 else ("checked", "plain")
                for name in order:
                    t0 = time.perf_counter()
                    fns[name]()
                    samples[name].append(time.perf_counter() - t0)
            row: dict[str, Any] = {
                name: {"p50_ms": _p(s, 50), "p99_ms": _p(s, 99)} for name, s in samples.items()
            }
            row["ratio_p50"] = round(
                statistics.median(samples["checked"]) / statistics.median(samples["plain"]), 2
            )
            results[str(n)] = row
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        conn.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="10,100,1000")
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    counts = [int(x) for x in args.users.split(",")]
    try:
        results = run(counts, args.iterations)
    except redis.exceptions.ConnectionError as exc:
        raise SystemExit(f"no Redis at {REDIS_URL}: {exc}") from None
    print(json.dumps(results, indent=2))
    print("\n| users (2 connections each) | plain p50 / p99 ms | checked p50 / p99 ms | ratio p50 |")
    print("| --- | --- | --- | --- |")
    for n, row in results.items():
        print(
            f"| {n} | {row['plain']['p50_ms']} / {row['plain']['p99_ms']} | "
            f"{row['checked']['p50_ms']} / {row['checked']['p99_ms']} | {row['ratio_p50']} |"
        )


if __name__ == "__main__":
    main()
