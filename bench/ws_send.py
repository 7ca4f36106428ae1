"""sendMessage handler latency (p50/p99) and Postgres/Redis round trips per message.

The real ws_messages handler is invoked with WebSocket MESSAGE events; real Postgres + Redis
(throwaway database and prefix), fan-out over HTTP to the local @connections server (answering
at once) and the outbox flushed to the local EventBridge endpoint, as in the cloud.
Round trips are counted on the wire (bench/realtime_support.py). Rooms of 10 and 100 members
show whether the cost per message is constant in the room size.

    .venv/bin/python -m bench.ws_send [--messages 300] [--sizes 10,100]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench.realtime_support import RedisRoundTrips, bench_environment, connected_room, quiet, summary_ms


def run(room_size: int, messages: int, warmup: int, *, bus: bool = True) -> dict[str, Any]:
    from local_stack.connections import running_management_api
    from local_stack.eventbridge import LocalEventBus, running_eventbridge_api
    from tests.support.apigw import lambda_context
    from tests.support.lambdas import load_handler
    from tests.support.ws_events import message_event

    event_bus = LocalEventBus.from_catalog(lambda fn, ev: None, name="chatflow", region="us-east-1")
    with running_management_api() as api, running_eventbridge_api(event_bus) as events:
        env = {
            "WS_MANAGEMENT_ENDPOINT": api.endpoint_url,
            # With a bus, ROOMS' send flushes the outbox after COMMIT (PutEvents) as in the cloud.
            "EVENTS_ENDPOINT_URL": events.endpoint_url if bus else "",
            "RATE_MESSAGES_PER_10S": "100000000",
        }
        with bench_environment(env, count_pg=True) as benv:
            assert benv.pg_proxy is not None
            users, room, cids = connected_room(benv, api.backend, room_size, "bench")
            owner = users[0]
            sender = cids[owner.user_id]
            handler = load_handler("ws_messages")
            ctx = lambda_context("ws_messages")
            redis_rt = RedisRoundTrips()
            redis_rt.install()
            latencies: list[float] = []
            pg_counts: list[int] = []
            redis_counts: list[int] = []
            try:
                for i in range(warmup + messages):
                    frame = {
                        "action": "sendMessage",
                        "roomId": str(room.id),
                        "clientMessageId": f"b-{i}",
                        "body": f"message {i}",
                    }
                    event = message_event(owner, sender, frame)
                    benv.pg_proxy.reset()
                    redis_rt.reset()
                    t0 = time.perf_counter()
                    response = handler(event, ctx)
                    dt = time.perf_counter() - t0
                    assert json.loads(response["body"])["type"] == "ack", response
                    if i >= warmup:
                        latencies.append(dt)
                        pg_counts.append(benv.pg_proxy.reset())
                        redis_counts.append(redis_rt.reset())
            finally:
                redis_rt.uninstall()
            total = warmup + messages
            for u in users[1:]:
                got = [f for f in api.backend.posted_json(cids[u.user_id]) if f.get("type") == "message"]
                assert len(got) == total, (len(got), total)
            return {
                "room_size": room_size,
                "outbox_flush": bus,
                **{k: round(v, 2) for k, v in summary_ms(latencies).items()},
                "pg_round_trips": sorted(set(pg_counts)),
                "redis_round_trips": sorted(set(redis_counts)),
                "pg_round_trips_median": sorted(pg_counts)[len(pg_counts) // 2],
                "redis_round_trips_median": sorted(redis_counts)[len(redis_counts) // 2],
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--sizes", default="10,100")
    parser.add_argument("--no-bus", action="store_true", help="also run without the outbox flush")
    args = parser.parse_args()
    for bus in (True, False) if args.no_bus else (True,):
        for size in (int(s) for s in args.sizes.split(",")):
            result = quiet(lambda: run(size, args.messages, args.warmup, bus=bus))  # noqa: B023
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
