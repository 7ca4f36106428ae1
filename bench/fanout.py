"""Fan-out of one message to N connections through the @connections API, in the same run:

* ``lean``: the notifier as the handlers use it (chatflow.adapters.apigw_connections on the lean
  SigV4 client, chatflow.adapters.apigw_http), ``--workers`` threads;
* ``boto3``: the same fan-out through botocore's ``post_to_connection`` (the notifier before
  issue 13: one client with ``max_pool_connections`` = workers, ``ThreadPoolExecutor.map``);
* ``lean_one_by_one``: the lean notifier one target after the other (the concurrency baseline).

The local @connections server (local_stack.connections, recording backend, SigV4 verified) runs in
a SEPARATE process answering every request after a simulated latency (default 20 ms, AWS
in-region), so the client CPU measured here (this process) excludes the server's. After each
mode the server reports how many frames every connection received: each must be exactly one.
Modes run interleaved ``--rounds`` times; the figures are the medians.

    .venv/bin/python -m bench.fanout [--connections 1000] [--latency-ms 20] [--workers 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any


def send_one_by_one(notifier: Any, targets: Any, data: bytes) -> Any:
    """The baseline: one PostToConnection after another (the notifier posts a single target
    directly, without its thread pool), merged into one DeliveryReport."""
    from chatflow.domain.realtime_models import DeliveryReport

    report = DeliveryReport()
    for target in targets:
        one = notifier.send([target], data)
        report.delivered += one.delivered
        report.gone += one.gone
        report.failed += one.failed
    return report


class Boto3Fanout:
    """The baseline: botocore's ``post_to_connection`` on a thread pool (as before issue 13)."""

    def __init__(self, endpoint_url: str, workers: int) -> None:
        import botocore.session
        from botocore.config import Config

        self.client: Any = botocore.session.get_session().create_client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            config=Config(
                max_pool_connections=workers, retries={"total_max_attempts": 1}, tcp_keepalive=True
            ),
        )
        self.pool = ThreadPoolExecutor(workers)

    def send(self, targets: Any, data: bytes) -> Any:
        from chatflow.domain.realtime_models import DeliveryReport

        gone = self.client.exceptions.GoneException

        def post(target: Any) -> bool:
            try:
                self.client.post_to_connection(ConnectionId=target.connection_id, Data=data)
                return True
            except gone:
                return False

        report = DeliveryReport()
        for target, ok in zip(targets, self.pool.map(post, targets), strict=True):
            (report.delivered if ok else report.gone).append(target)
        return report


def _server(conn: Connection, latency_s: float) -> None:
    """The @connections endpoint in its own process, driven by commands over a pipe."""
    from local_stack.connections import RecordingBackend, running_management_api

    backend = RecordingBackend()
    with running_management_api(backend, latency_s=latency_s) as api:
        conn.send(api.endpoint_url)
        while True:
            cmd, arg = conn.recv()
            if cmd == "register":
                conn.send([backend.register() for _ in range(arg)])
            elif cmd == "counts":
                conn.send({cid: len(backend.posted(cid)) for cid in arg})
            elif cmd == "clear":
                for cid in arg:
                    with backend._lock:
                        backend._connections[cid].posts.clear()
                conn.send(True)
            elif cmd == "stop":
                conn.send(True)
                return


def run(
    connections: int, latency_ms: float, workers: int, rounds: int = 3, *, with_one_by_one: bool = True
) -> dict[str, Any]:
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"  # the key pair the local endpoints verify
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    from chatflow.adapters.apigw_connections import ApiGatewayNotifier
    from chatflow.domain.realtime import encode_frame
    from chatflow.domain.realtime_models import Target
    from chatflow.settings import Settings

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_server, args=(child, latency_ms / 1000), daemon=True)
    proc.start()
    try:
        endpoint = parent.recv()
        parent.send(("register", connections))
        cids: list[str] = parent.recv()
        targets = [Target(uuid.uuid4(), cid) for cid in cids]
        frame = encode_frame({"type": "message", "message": {"body": "x" * 200, "seq": 1}})
        notifier = ApiGatewayNotifier(
            Settings(), endpoint_url=endpoint, max_workers=workers, metric=lambda n, c: None
        )
        # Warm the client and the pool (a Lambda container reuses both across invocations).
        notifier.send(targets[: min(workers, len(targets))], frame)
        send_one_by_one(notifier, targets[:1], frame)
        parent.send(("clear", cids))
        parent.recv()

        boto = Boto3Fanout(endpoint, workers)
        boto.send(targets[: min(workers, len(targets))], frame)  # warm its pool the same way
        parent.send(("clear", cids))
        parent.recv()

        def one_by_one(targets: Any, data: bytes) -> Any:
            return send_one_by_one(notifier, targets, data)

        modes: dict[str, Callable[[Any, bytes], Any]] = {"lean": notifier.send, "boto3": boto.send}
        if with_one_by_one:
            modes["lean_one_by_one"] = one_by_one
        samples: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for _ in range(rounds):
            for mode, send in modes.items():
                cpu0, t0 = time.process_time(), time.perf_counter()
                report = send(targets, frame)
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                parent.send(("counts", cids))
                counts: dict[str, int] = parent.recv()
                parent.send(("clear", cids))
                parent.recv()
                samples[mode].append(
                    {
                        "wall_s": wall,
                        "delivered": len(report.delivered),
                        "exactly_once": all(n == 1 for n in counts.values()) and len(counts) == connections,
                        "cpu_ms": cpu * 1000 / max(1, len(report.delivered)),
                    }
                )
            if with_one_by_one:  # 20 s per round at 20 ms: once is enough
                modes.pop("lean_one_by_one", None)
        results: dict[str, Any] = {
            "connections": connections,
            "latency_ms": latency_ms,
            "workers": workers,
            "rounds": rounds,
        }
        for mode, runs in samples.items():
            results[mode] = {
                "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
                "delivered": min(r["delivered"] for r in runs),
                "exactly_once": all(r["exactly_once"] for r in runs),
                "client_cpu_ms_per_message": round(statistics.median(r["cpu_ms"] for r in runs), 3),
            }
        results["cpu_ratio_lean_vs_boto3"] = round(
            results["lean"]["client_cpu_ms_per_message"] / results["boto3"]["client_cpu_ms_per_message"], 3
        )
        if "lean_one_by_one" in results:
            results["speedup"] = round(results["lean_one_by_one"]["wall_s"] / results["lean"]["wall_s"], 1)
        notifier.close()
        boto.pool.shutdown()
        return results
    finally:
        parent.send(("stop", None))
        proc.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-one-by-one", action="store_true", help="skip the one-by-one baseline")
    args = parser.parse_args()
    result = run(
        args.connections, args.latency_ms, args.workers, args.rounds, with_one_by_one=not args.no_one_by_one
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
