"""Handler time with 10 vs 10,000 registered connections in Redis (aim: ratio <= 1.2).

Nothing in the realtime path scans connections: every operation touches the keys of the users
or the room at hand. This measures the real handlers (sendMessage in a room of 10, ping,
$connect + $disconnect) with only the room's 10 connections registered, then with 10,000 more
connections of other users, alternating (small, large, small, large) to cancel drift on a shared
machine. Real Postgres + Redis, @connections on loopback (answering at once).

    .venv/bin/python -m bench.registry_scale [--iterations 200] [--extra 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.realtime_support import bench_environment, connected_room, insert_users, pct, quiet


def _measure(fn: Callable[[int], None], n: int) -> float:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t0)
    return float(pct(samples, 50) * 1000)


def run(iterations: int, extra: int) -> dict[str, Any]:
    from local_stack.connections import new_connection_id, running_management_api
    from tests.support.apigw import lambda_context
    from tests.support.lambdas import load_handler
    from tests.support.ws_events import connect_event, disconnect_event, message_event

    with running_management_api() as api:
        env = {
            "WS_MANAGEMENT_ENDPOINT": api.endpoint_url,
            "RATE_MESSAGES_PER_10S": "100000000",
            "RATE_CONNECTS_PER_MINUTE": "100000000",  # connect+disconnect is measured in a loop
        }
        with bench_environment(env) as benv:
            store = benv.container.connection_registry
            users, room, cids = connected_room(benv, api.backend, 10, "scale")
            owner = users[0]
            connect, disconnect = load_handler("ws_connect"), load_handler("ws_disconnect")
            messages, ping = load_handler("ws_messages"), load_handler("ws_ping")
            sender = cids[owner.user_id]
            # A user with a free connection slot for the connect/disconnect measurement.
            (visitor,) = insert_users(benv.database_url, 1)
            benv.container.rooms.join(visitor, room.id)
            others = [uuid.uuid4() for _ in range(extra // 5)]  # 5 connections each (the limit)

            def send(i: int) -> None:
                frame = {
                    "action": "sendMessage",
                    "roomId": str(room.id),
                    "clientMessageId": uuid.uuid4().hex,
                    "body": "x",
                }
                out = messages(message_event(owner, sender, frame), lambda_context("ws_messages"))
                # The ack is posted to the sender before the fan-out (no route response) unless
                # posting it failed.
                assert out == {"statusCode": 200} or '"ack"' in out["body"], out

            def ping_once(i: int) -> None:
                out = ping(message_event(owner, sender, {"action": "ping"}), lambda_context("ws_ping"))
                assert '"pong"' in out["body"], out

            def connect_disconnect(i: int) -> None:
                cid = api.backend.register(new_connection_id())
                assert connect(connect_event(visitor, cid), lambda_context("ws_connect"))["statusCode"] == 200
                disconnect(disconnect_event(visitor, cid), lambda_context("ws_disconnect"))

            def fill() -> None:
                for uid in others:
                    for _ in range(5):
                        store.register(uid, new_connection_id())

            def empty() -> None:
                for uid in others:
                    store.remove_all(uid)

            cases: dict[str, Callable[[int], None]] = {
                "sendMessage": send,
                "ping": ping_once,
                "connect+disconnect": connect_disconnect,
            }
            for fn in cases.values():  # warm every path
                _measure(fn, 20)
            rounds: dict[str, dict[str, list[float]]] = {k: {"small": [], "large": []} for k in cases}
            for _ in range(2):
                for name, fn in cases.items():
                    rounds[name]["small"].append(_measure(fn, iterations))
                fill()
                registered = len(store.connections_of([*others, *cids]))
                for name, fn in cases.items():
                    rounds[name]["large"].append(_measure(fn, iterations))
                empty()
            out: dict[str, Any] = {"registered_small": len(cids), "registered_large": registered}
            for name, r in rounds.items():
                small, large = statistics.fmean(r["small"]), statistics.fmean(r["large"])
                out[name] = {
                    "p50_ms_small": round(small, 2),
                    "p50_ms_large": round(large, 2),
                    "ratio": round(large / small, 2),
                }
            return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--extra", type=int, default=10000)
    args = parser.parse_args()
    print(json.dumps(quiet(lambda: run(args.iterations, args.extra))))


if __name__ == "__main__":
    main()
