"""Local gateway throughput: 200 clients in 20 rooms, real functions, real Postgres/Redis.

The clients are the project's Python client (clients/python), as an app would use it: one send in
flight per room per client (the next goes once the previous is acked), every message released to
the app in seq order exactly once (a gap -- e.g. two members' messages fanned out in the other
order -- waits for the missing one, at most ``gap_wait_s``, then is filled with resume).

Set-up (not measured): a throwaway database + Redis prefix (bench/realtime_support.py), the local
gateway with the catalog's functions in worker processes, users registered and rooms joined over
the HTTP API, every client connected (``$connect`` through the authorizer) and joined to its room.

Measured: every client sends ``--messages`` messages (one every ``--interval`` seconds, staggered);
each member receives each message. Reported:

* delivered messages/s -- deliveries to receivers / (first send -> last delivery);
* delivery latency p50 / p99 -- the sender's app hands the message to the client -> a member's app
  gets it (in order): queueing behind the sender's previous message and waiting for a gap to
  fill are included, as a user sees them (all clients run in this process on the same clock; they
  share the 2 cores with the gateway and the functions);
* how deliveries arrived (``live`` or caught up by ``resume``);
* the gateway's own cost per message: frame received -> route response sent, minus the time
  inside the handler (measured in the worker), i.e. event building, routing, the process hop and
  JSON; plus the server-side cost of each @connections POST the handler's fan-out makes.

    .venv/bin/python -m bench.gateway_throughput [--clients 200 --rooms 20 --messages 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.realtime_support import REDIS_URL, bench_environment, pct
from chatflow_client import ActionRefused, ChatClient, MessageReceived, ServerError
from local_stack.gateway import GatewayConfig, RunningGateway, running_gateway
from local_stack.services import dev_signing_keys, function_env

PASSWORD = "correct-horse-battery-staple"


async def _setup_clients(
    gw: RunningGateway, session: aiohttp.ClientSession, clients: int, rooms: int
) -> tuple[list[ChatClient], list[str], list[int]]:
    """Register users, create rooms, join them (membership); returns the clients (not connected),
    room ids and the room index of each client."""
    sem = asyncio.Semaphore(8)
    chats = [ChatClient(gw.http_url, gw.ws_url, session=session) for _ in range(clients)]

    async def register(i: int) -> None:
        async with sem:
            await chats[i].register(f"b{i}_{uuid.uuid4().hex[:6]}", PASSWORD)

    await asyncio.gather(*(register(i) for i in range(clients)))
    room_of = [i % rooms for i in range(clients)]
    owners = {r: next(i for i in range(clients) if room_of[i] == r) for r in range(rooms)}
    room_ids = [(await chats[owners[r]].api.create_room(f"bench-{r}")).id for r in range(rooms)]

    async def join(i: int) -> None:
        if owners[room_of[i]] != i:
            async with sem:
                await chats[i].api.join_room(room_ids[room_of[i]])

    await asyncio.gather(*(join(i) for i in range(clients)))
    return chats, room_ids, room_of


async def _run(gw: RunningGateway, args: argparse.Namespace) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        chats, room_ids, room_of = await _setup_clients(gw, session, args.clients, args.rooms)
        try:
            return await _measure(gw, args, chats, room_ids, room_of)
        finally:
            await asyncio.gather(*(c.close() for c in chats), return_exceptions=True)


async def _measure(
    gw: RunningGateway,
    args: argparse.Namespace,
    chats: list[ChatClient],
    room_ids: list[str],
    room_of: list[int],
) -> dict[str, Any]:
    runtime = gw.gateway.runtime
    assert runtime is not None
    await asyncio.to_thread(gw.run, runtime.warm(["ws_messages"], workers=args.concurrency), 120)
    sem = asyncio.Semaphore(10)

    async def connect(i: int) -> None:
        async with sem:
            await chats[i].connect()
            await chats[i].join(room_ids[room_of[i]], since_seq=0)

    await asyncio.gather(*(connect(i) for i in range(len(chats))))
    members = args.clients // args.rooms
    expected = args.clients * args.messages * (members - 1)
    latencies: list[float] = []
    acks: list[float] = []
    errors: list[str] = []
    sources: dict[str, int] = {}
    done = asyncio.Event()
    sent_at: dict[str, float] = {}
    per_message: dict[str, int] = {}
    last_delivery = 0.0

    def delivered(event: MessageReceived) -> None:
        nonlocal last_delivery
        if event.own:
            return
        now = time.perf_counter()
        cmid = event.message.client_message_id or ""
        per_message[cmid] = per_message.get(cmid, 0) + 1
        sources[event.source] = sources.get(event.source, 0) + 1
        started = sent_at.get(cmid)
        if started is not None:
            latencies.append(now - started)
            last_delivery = now
            if len(latencies) >= expected:
                done.set()

    for chat in chats:
        chat.on(MessageReceived, delivered)
        chat.on(ServerError, lambda e: errors.append(e.code))

    # Measure only the steady state: reset the gateway's counters after set-up.
    ws_api, mgmt = gw.gateway.ws, gw.gateway.management
    assert ws_api is not None
    assert mgmt is not None
    ws_api.message_stats.messages = 0
    ws_api.message_stats.gateway_ms_total = ws_api.message_stats.invoke_ms_total = 0.0
    pool = runtime.pool("ws_messages")
    pool.stats.handler_ms_total = pool.stats.duration_ms_total = pool.stats.wait_ms_total = 0.0
    pool.stats.invocations = 0
    mgmt.posts, mgmt.post_ms_total = 0, 0.0

    async def acked(cmid: str, outgoing: Any) -> None:
        try:
            await outgoing
            acks.append(time.perf_counter() - sent_at[cmid])
        except ActionRefused as exc:
            errors.append(exc.code)

    ack_tasks: list[asyncio.Task[None]] = []

    async def sender(i: int, chat: ChatClient) -> None:
        await asyncio.sleep(args.interval * i / args.clients)  # stagger the clients
        for n in range(args.messages):
            cmid = f"b-{i}-{n}-{uuid.uuid4().hex[:6]}"
            sent_at[cmid] = time.perf_counter()
            outgoing = chat.enqueue(room_ids[room_of[i]], f"m{n}", client_message_id=cmid)
            ack_tasks.append(asyncio.create_task(acked(cmid, outgoing)))
            await asyncio.sleep(args.interval)

    first_send = time.perf_counter()
    cpu_started = time.process_time()
    await asyncio.gather(*(sender(i, chat) for i, chat in enumerate(chats)))
    with contextlib.suppress(TimeoutError):  # a shortfall shows in deliveries vs expected
        await asyncio.wait_for(done.wait(), args.timeout)
    await asyncio.gather(*ack_tasks)
    elapsed = (last_delivery or time.perf_counter()) - first_send
    # This process: the clients and the gateway (its thread); the functions are other processes.
    cpu_ms = (time.process_time() - cpu_started) * 1000
    stats = ws_api.message_stats
    gateway_ms = stats.gateway_ms_total / max(stats.messages, 1)
    own_ms = stats.emulation_ms_total / max(stats.messages, 1)
    handler_ms = pool.stats.handler_ms_total / max(pool.stats.invocations, 1)
    invoke_ms = pool.stats.duration_ms_total / max(pool.stats.invocations, 1)
    wait_ms = pool.stats.wait_ms_total / max(pool.stats.invocations, 1)
    missing = [c for c in sent_at if per_message.get(c, 0) != members - 1]
    ms = [x * 1000 for x in latencies]
    return {
        "clients": args.clients,
        "rooms": args.rooms,
        "messages_sent": args.clients * args.messages,
        "deliveries": len(latencies),
        "expected_deliveries": expected,
        "delivered_by": sources,
        "errors": len(errors),
        "messages_not_fully_delivered": len(missing),
        "error_codes": sorted(set(errors)),
        "seconds": round(elapsed, 2),
        "delivered_per_s": round(len(latencies) / elapsed, 1) if elapsed > 0 else 0,
        "latency_ms": {
            "p50": round(pct(ms, 50), 1),
            "p99": round(pct(ms, 99), 1),
            "mean": round(statistics.fmean(ms), 1),
        }
        if ms
        else {},
        "clients_and_gateway_cpu_ms_per_delivery": round(cpu_ms / max(len(latencies), 1), 3),
        "ack_ms_p50": round(pct([a * 1000 for a in acks], 50), 1) if acks else None,
        "per_message": {
            "gateway_total_ms": round(gateway_ms, 2),
            "invoke_ms (gateway->worker->gateway)": round(invoke_ms, 2),
            "handler_ms (inside ws_messages)": round(handler_ms, 2),
            "waiting_for_a_worker_ms": round(wait_ms, 2),
            "gateway_own_work_ms (route, event, response)": round(own_ms, 2),
            "process_hop_ms (IPC + JSON to/from the worker)": round(invoke_ms - handler_ms, 2),
            "emulation_overhead_ms (own work + hop)": round(own_ms + invoke_ms - handler_ms, 2),
            "connections_post_server_ms": round(mgmt.post_ms_total / max(mgmt.posts, 1), 3),
            "connections_posts": mgmt.posts,
        },
        "ws_messages_workers": pool.max_concurrency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--messages", type=int, default=3, help="messages per client")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between a client's sends")
    parser.add_argument("--concurrency", type=int, default=2, help="workers per function (Lambda scale-out)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()

    with bench_environment() as bench, tempfile.TemporaryDirectory() as keys_dir:
        private, public = dev_signing_keys(Path(keys_dir))
        env = function_env(
            bench.database_url,
            REDIS_URL,
            private,
            public,
            env_name="test",
            redis_prefix=bench.redis_prefix,
            base={**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"},
        )
        log_lines = 0
        log_sample: list[str] = []

        def sink(function: str, line: str) -> None:
            nonlocal log_lines
            log_lines += 1
            if len(log_sample) < 5:
                log_sample.append(f"[{function}] {line[:300]}")

        config = GatewayConfig(
            env=env, with_eventbridge=True, lambda_concurrency=args.concurrency, log_sink=sink
        )
        with running_gateway(config) as gw:
            result = asyncio.run(_run(gw, args))  # clients on their own loop, gateway on its thread
        result["function_log_lines"] = log_lines
        result["function_log_sample"] = log_sample
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
