"""sendMessage: the sender's ack latency (p50/p99), the whole invocation, and Postgres/Redis round
trips per message, by room size.

The real ws_messages handler is invoked with WebSocket MESSAGE events; real Postgres + Redis
(throwaway database and prefix), fan-out over HTTP to the local @connections server (answering
at once, in this process) and the outbox flushed to the local EventBridge endpoint, as in the
cloud. Round trips are counted on the wire (bench/realtime_support.py).

* ``p50``/``p99`` (the aim of issue 13 §3): when the sender has its ack -- the moment the
  @connections server received the ack posted to the sender's connection, or, when the handler
  answers with the ack as its route response (before issue 13), the moment the handler returned.
* ``invoke_p50``/``invoke_p99``: the whole invocation (ack + fan-out: what Lambda bills).

    .venv/bin/python -m bench.ws_send [--messages 300] [--sizes 10,100,190]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench.realtime_support import RedisRoundTrips, bench_environment, connected_room, quiet, summary_ms


def _timed_backend(sender: list[str]) -> Any:
    """A RecordingBackend that notes when an ack reaches ``sender[0]``'s connection."""
    from local_stack.connections import RecordingBackend

    class TimedBackend(RecordingBackend):
        ack_at: float | None = None

        async def post(self, connection_id: str, data: bytes) -> None:
            await super().post(connection_id, data)
            if sender and connection_id == sender[0] and b'"type":"ack"' in data:
                self.ack_at = time.perf_counter()

    return TimedBackend()


def run(room_size: int, messages: int, warmup: int, *, bus: bool = True) -> dict[str, Any]:
    from local_stack.connections import running_management_api
    from local_stack.eventbridge import LocalEventBus, running_eventbridge_api
    from tests.support.apigw import lambda_context
    from tests.support.lambdas import load_handler
    from tests.support.ws_events import message_event

    event_bus = LocalEventBus.from_catalog(lambda fn, ev: None, name="chatflow", region="us-east-1")
    sender_cid: list[str] = []
    backend = _timed_backend(sender_cid)
    with running_management_api(backend) as api, running_eventbridge_api(event_bus) as events:
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
            sender_cid.append(sender)
            handler = load_handler("ws_messages")
            ctx = lambda_context("ws_messages")
            redis_rt = RedisRoundTrips()
            redis_rt.install()
            latencies: list[float] = []
            invocations: list[float] = []
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
                    backend.ack_at = None
                    t0 = time.perf_counter()
                    response = handler(event, ctx)
                    dt = time.perf_counter() - t0
                    if response.get("body"):  # the ack is the route response: sent on return
                        assert json.loads(response["body"])["type"] == "ack", response
                        ack_s = dt
                    else:  # the ack was posted to the sender's connection during the call
                        assert backend.ack_at is not None, response
                        ack_s = backend.ack_at - t0
                    if i >= warmup:
                        latencies.append(ack_s)
                        invocations.append(dt)
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
                **{f"invoke_{k}": round(v, 2) for k, v in summary_ms(invocations).items() if k != "n"},
                "pg_round_trips": sorted(set(pg_counts)),
                "redis_round_trips": sorted(set(redis_counts)),
                "pg_round_trips_median": sorted(pg_counts)[len(pg_counts) // 2],
                "redis_round_trips_median": sorted(redis_counts)[len(redis_counts) // 2],
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--sizes", default="10,100,190")
    parser.add_argument("--no-bus", action="store_true", help="also run without the outbox flush")
    args = parser.parse_args()
    for bus in (True, False) if args.no_bus else (True,):
        for size in (int(s) for s in args.sizes.split(",")):
            result = quiet(lambda: run(size, args.messages, args.warmup, bus=bus))  # noqa: B023
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
