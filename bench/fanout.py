"""Fan-out of one message to N connections through the @connections API: concurrent (the
notifier as the handlers use it) vs one-by-one, in the same run.

The local @connections server (local_stack.connections, recording backend) runs in a SEPARATE
process answering every request after a simulated latency (default 20 ms, AWS in-region), so the
client CPU measured here (this process: boto3 + our notifier) excludes the server's. After each
mode the server reports how many frames every connection received: each must be exactly one.

    .venv/bin/python -m bench.fanout [--connections 1000] [--latency-ms 20] [--workers 32]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
import uuid
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


def run(connections: int, latency_ms: float, workers: int) -> dict[str, Any]:
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

        results: dict[str, Any] = {"connections": connections, "latency_ms": latency_ms, "workers": workers}

        def one_by_one(targets: Any, data: bytes) -> Any:
            return send_one_by_one(notifier, targets, data)

        for mode, send in (("concurrent", notifier.send), ("one_by_one", one_by_one)):
            cpu0, t0 = time.process_time(), time.perf_counter()
            report = send(targets, frame)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            parent.send(("counts", cids))
            counts: dict[str, int] = parent.recv()
            parent.send(("clear", cids))
            parent.recv()
            exactly_once = all(n == 1 for n in counts.values()) and len(counts) == connections
            results[mode] = {
                "wall_s": round(wall, 3),
                "delivered": len(report.delivered),
                "exactly_once": exactly_once,
                "client_cpu_ms_per_message": round(cpu * 1000 / max(1, len(report.delivered)), 3),
            }
        results["speedup"] = round(results["one_by_one"]["wall_s"] / results["concurrent"]["wall_s"], 1)
        notifier.close()
        return results
    finally:
        parent.send(("stop", None))
        proc.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    print(json.dumps(run(args.connections, args.latency_ms, args.workers)))


if __name__ == "__main__":
    main()
