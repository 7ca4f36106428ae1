"""One message to a big room through the asynchronous path (issue 13 §4): from the sender's frame
to the LAST delivery, with the @connections endpoint answering after 20 ms.

What runs, all real except AWS's own scaling:

* the ``ws_messages`` handler (this process) gets Alice's ``sendMessage`` in a room of
  ``--members`` members (each with one live connection): it commits, posts the ack, and hands the
  room to SQS as jobs of ``CHUNK_MEMBERS`` member ids (SendMessageBatch, 10 jobs per call);
* SQS is the local stack's (local_stack.sqs, over HTTP, in this process);
* ``--workers`` separate processes play the ``fanout`` function's concurrent execution
  environments: each long-polls the queue (one record per event, the catalog's batch size),
  invokes the real handler (``functions/fanout/handler.py``: members re-checked, connections from
  one Redis pipeline, 32 threads on the lean @connections client), then deletes the message;
* ``--servers`` processes serve @connections on ONE port (SO_REUSEPORT; SigV4 verified; each
  answer after ``--latency-ms``), recording when each frame arrived. API Gateway is not one
  Python process; several keep the bench from measuring the local server instead of the path.

Before the measured rounds, ``--warmup`` rounds warm every worker (imports, Redis and Postgres
connections, keep-alive connections): Lambda keeps environments warm for a busy room; a cold
``fanout`` environment adds its cold start (docs/performance.md, "Cold start").

Per round: ``ack_ms`` (until the ack reached the sender), ``enqueued_ms`` (the handler's
return: ack + jobs on the queue), ``last_delivery_s`` (the last frame's arrival, from the moment
the frame was handed to the handler), the jobs run, each job's CPU time and duration in its
worker (the ``fanout`` invocation: what Lambda bills), and whether every member's connection got
the frame EXACTLY once (the sender's own connection: none).

    .venv/bin/python -m bench.big_room [--members 5000] [--latency-ms 20] [--workers 10] \\
        [--servers 2] [--rounds 3] [--warmup 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import time
import uuid
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

from bench.realtime_support import bench_environment, insert_users, quiet

REGION = "us-east-1"


# --- @connections servers (one port, several processes) -------------------------------------------


def _server(conn: Connection, port_holder: Any, latency_s: float, kind: str) -> None:
    """``kind`` "local": the local stack's @connections server (aiohttp, SigV4 verified);
    "raw": a minimal HTTP/1.1 keep-alive responder (200 after ``latency_s``, no verification)
    costing a fraction of the CPU per request, for when the local server is the bottleneck."""
    from aiohttp import web

    from local_stack.connections import ManagementApi, RecordingBackend
    from local_stack.sigv4 import SigV4Config

    arrivals: dict[str, list[float]] = {}

    class Timed(RecordingBackend):
        async def post(self, connection_id: str, data: bytes) -> None:
            await super().post(connection_id, data)
            arrivals.setdefault(connection_id, []).append(time.time())

    backend = Timed()
    api = ManagementApi(backend, latency_s=latency_s, sigv4=SigV4Config())

    async def raw_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, _, headers = head.partition(b"\r\n")
                length = 0
                for line in headers.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                cid = request_line.split(b" ")[1].rsplit(b"/", 1)[-1].decode()
                from urllib.parse import unquote

                arrivals.setdefault(unquote(cid), []).append(time.time())
                if latency_s:
                    await asyncio.sleep(latency_s)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        if kind == "raw":
            server = await asyncio.start_server(
                raw_client, "127.0.0.1", port_holder.value, reuse_port=True, backlog=1024
            )
            stop_server = server.close
        else:
            runner = web.AppRunner(api.app(), access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", port_holder.value, reuse_port=True, backlog=1024)
            await site.start()

            def stop_server() -> None:
                pass

        loop = asyncio.get_running_loop()
        conn.send("ready")
        while True:
            cmd, arg = await loop.run_in_executor(None, conn.recv)
            if cmd == "register":
                for cid in arg:
                    backend.register(cid)
                conn.send(True)
            elif cmd == "arrivals":
                conn.send({cid: list(ts) for cid, ts in arrivals.items()})
            elif cmd == "clear":
                arrivals.clear()
                conn.send(True)
            elif cmd == "stop":
                stop_server()
                conn.send(True)
                return

    asyncio.run(main())


# --- the fanout function's execution environments ----------------------------------------------------


def _worker(queue_url: str, endpoint: str, stop: Event, done: Any, stats: Any) -> None:
    import botocore.session

    from tests.support.apigw import lambda_context
    from tests.support.lambdas import load_handler

    handler = load_handler("fanout")  # the init phase (container, prime)
    ctx = lambda_context("fanout")
    sqs: Any = botocore.session.get_session().create_client("sqs", region_name=REGION, endpoint_url=endpoint)
    while not stop.is_set():
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
        for m in got.get("Messages", []):
            now = str(int(time.time() * 1000))
            record = {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:fanout",
                "awsRegion": REGION,
            }
            cpu0, t0 = time.process_time(), time.perf_counter()
            result = handler({"Records": [record]}, ctx)
            stats.put((time.process_time() - cpu0, time.perf_counter() - t0))
            if not result.get("batchItemFailures"):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
            with done.get_lock():
                done.value += 1


# --- the run -------------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    members: int,
    latency_ms: float,
    workers: int,
    servers: int,
    rounds: int,
    warmup: int,
    server: str = "local",
) -> dict[str, Any]:
    from chatflow.domain.identity import Identity
    from local_stack.connections import new_connection_id
    from local_stack.eventbridge import LocalEventBus, running_eventbridge_api
    from tests.support.apigw import lambda_context
    from tests.support.lambdas import load_handler
    from tests.support.ws_events import message_event

    ctx = mp.get_context("spawn")
    port = ctx.Value("i", _free_port())
    pipes = []
    procs = []
    for _ in range(servers):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_server, args=(child, port, latency_ms / 1000, server), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    for p in pipes:
        assert p.recv() == "ready"
    endpoint = f"http://127.0.0.1:{port.value}/local"

    def ask(cmd: str, arg: Any = None) -> list[Any]:
        for p in pipes:
            p.send((cmd, arg))
        return [p.recv() for p in pipes]

    stop = ctx.Event()
    done = ctx.Value("i", 0)
    stats = ctx.Queue()
    worker_procs: list[Any] = []
    try:
        bus = LocalEventBus.from_catalog(lambda fn, ev: None, name="chatflow", region=REGION)
        with running_eventbridge_api(bus) as aws:
            import botocore.session

            sqs: Any = botocore.session.get_session().create_client(
                "sqs",
                region_name=REGION,
                endpoint_url=aws.endpoint_url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            queue_url = sqs.create_queue(QueueName=f"fanout-{uuid.uuid4().hex[:6]}")["QueueUrl"]
            env = {
                "WS_MANAGEMENT_ENDPOINT": endpoint,
                "AWS_ENDPOINT_URL": aws.endpoint_url,
                "FANOUT_QUEUE_URL": queue_url,
                "RATE_MESSAGES_PER_10S": "100000000",
            }
            with bench_environment(env) as benv:
                users: list[Identity] = insert_users(benv.database_url, members)
                owner = users[0]
                room = benv.container.rooms.create_channel(
                    owner, "public", f"big-{uuid.uuid4().hex[:8]}"
                ).room
                import psycopg

                with psycopg.connect(benv.database_url, autocommit=True) as conn, conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO memberships (room_id, user_id) VALUES (%s, %s)",
                        [(room.id, u.user_id) for u in users[1:]],
                    )
                benv.container.room_cache.invalidate(room_ids=[room.id])
                registry = benv.container.connection_registry
                cids = {u.user_id: new_connection_id() for u in users}
                for u in users:
                    assert registry.register(u.user_id, cids[u.user_id], limit=5).accepted
                ask("register", list(cids.values()))
                sender = cids[owner.user_id]
                expected = {cids[u.user_id] for u in users[1:]}

                worker_procs = [
                    ctx.Process(
                        target=_worker, args=(queue_url, aws.endpoint_url, stop, done, stats), daemon=True
                    )
                    for _ in range(workers)
                ]
                for w in worker_procs:
                    w.start()
                handler = load_handler("ws_messages")

                def one_round(i: int) -> dict[str, Any]:
                    ask("clear")
                    jobs_before = done.value
                    frame = {
                        "action": "sendMessage",
                        "roomId": str(room.id),
                        "clientMessageId": f"big-{i}-{uuid.uuid4().hex[:6]}",
                        "body": f"to everyone, round {i}",
                    }
                    event = message_event(owner, sender, frame)
                    t0 = time.time()
                    response = handler(event, lambda_context("ws_messages"))
                    enqueued = time.time() - t0
                    deadline = time.monotonic() + 60
                    merged: dict[str, list[float]] = {}
                    while time.monotonic() < deadline:
                        merged = {}
                        for part in ask("arrivals"):
                            for cid, ts in part.items():
                                merged.setdefault(cid, []).extend(ts)
                        if expected <= merged.keys():
                            break
                        time.sleep(0.05)
                    time.sleep(0.3)  # anything arriving late (a duplicate) is counted too
                    merged = {}
                    for part in ask("arrivals"):
                        for cid, ts in part.items():
                            merged.setdefault(cid, []).extend(ts)
                    jobs: list[tuple[float, float]] = []
                    while not stats.empty():
                        jobs.append(stats.get())
                    acks = merged.pop(sender, [])
                    deliveries = [t for cid, ts in merged.items() for t in ts]
                    return {
                        "route_response": "body" in response,
                        "ack_ms": round((min(acks) - t0) * 1000, 1) if acks else None,
                        "enqueued_ms": round(enqueued * 1000, 1),
                        "delivered": len(merged),
                        "exactly_once": merged.keys() == expected
                        and all(len(ts) == 1 for ts in merged.values()),
                        "first_delivery_s": round(min(deliveries) - t0, 3) if deliveries else None,
                        "last_delivery_s": round(max(deliveries) - t0, 3) if deliveries else None,
                        "jobs": done.value - jobs_before,
                        # the fanout function's invocations: CPU (its own process) and duration
                        "job_cpu_ms_median": round(statistics.median(c for c, _ in jobs) * 1000, 1)
                        if jobs
                        else None,
                        "job_duration_ms_median": round(statistics.median(w for _, w in jobs) * 1000, 1)
                        if jobs
                        else None,
                        "job_duration_ms_max": round(max(w for _, w in jobs) * 1000, 1) if jobs else None,
                    }

                for i in range(warmup):
                    one_round(-1 - i)
                measured = [one_round(i) for i in range(rounds)]
                stop.set()
                last = [r["last_delivery_s"] for r in measured if r["last_delivery_s"] is not None]
                return {
                    "members": members,
                    "latency_ms": latency_ms,
                    "workers": workers,
                    "servers": servers,
                    "server": server,
                    "rounds": measured,
                    "last_delivery_s_median": round(statistics.median(last), 3) if last else None,
                    "last_delivery_s_max": max(last) if last else None,
                    "all_exactly_once": all(r["exactly_once"] for r in measured),
                }
    finally:
        stop.set()
        for w in worker_procs:
            w.join(5)
        ask("stop")
        for proc in procs:
            proc.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--server", choices=("local", "raw"), default="local")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    result = quiet(
        lambda: run(
            args.members, args.latency_ms, args.workers, args.servers, args.rounds, args.warmup, args.server
        )
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
