"""Cold start of the WebSocket functions vs the baseline, in fresh processes, same run.

Per function: a new Python process imports ``functions/<name>/handler.py`` the way Lambda does
and invokes it once with a sample event against the local Postgres/Redis (so deferring an
import gains nothing); the time from before the import to the end of the first invocation is
measured (interpreter start-up excluded, identical for all). Baseline (issue 2): importing
boto3, Powertools (Logger, Metrics, Tracer, HTTP resolver), pydantic, pyjwt, psycopg and redis and
creating two boto3 clients. Aims: ws_default and ws_ping <= 0.5x the baseline (no boto3/psycopg);
the others <= 0.85x.

    .venv/bin/python -m bench.ws_cold_start [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from bench.realtime_support import bench_environment, insert_users, quiet

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, sys, time
class Ctx:
    function_name = "cold"; memory_limit_in_mb = 512; aws_request_id = "r-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cold"
    def get_remaining_time_in_millis(self): return 10000
path, event = sys.argv[1], json.loads(sys.stdin.read())
ctx = Ctx()
t0 = time.perf_counter()
if path == "baseline":
    import boto3, jwt, psycopg, pydantic, redis
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
    boto3.client("events", region_name="us-east-1")
    boto3.client("apigatewaymanagementapi", region_name="us-east-1", endpoint_url="http://127.0.0.1:1")
    heavy = []
else:
    import importlib.util
    spec = importlib.util.spec_from_file_location("handler", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    t_init = time.perf_counter()
    out = module.handler(event, ctx)
    heavy = [m for m in ("boto3", "botocore", "psycopg", "redis", "pydantic") if m in sys.modules]
elapsed = time.perf_counter() - t0
init = (t_init - t0) if path != "baseline" else elapsed
sys.stdout.flush()
print("RESULT " + json.dumps({"s": elapsed, "init": init, "imports": heavy}))
"""


def _child(path: str, event: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, path],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=True,
        cwd=ROOT,
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    return result


def _compile_sources() -> None:
    """Lambda runs from a package pip built (with .pyc files); so must the measurement, or our
    own modules are compiled from source in every child while site-packages are not."""
    import compileall

    for tree in ("layers/chatflow/chatflow", "functions"):
        compileall.compile_dir(str(ROOT / tree), quiet=1)


def run(runs: int) -> dict[str, Any]:
    _compile_sources()
    from local_stack.connections import running_management_api
    from tests.support.ws_events import connect_event, disconnect_event, message_event, new_connection_id

    with running_management_api() as api:
        env = {"WS_MANAGEMENT_ENDPOINT": api.endpoint_url}
        with bench_environment(env) as benv:
            from chatflow.adapters.redis_realtime import get_realtime_store
            from chatflow.adapters.sqs_fanout import FanoutJob
            from chatflow.domain import rooms

            users = insert_users(benv.database_url, 2)
            owner, peer = users
            room = rooms.create_channel(owner, "public", f"cold-{uuid.uuid4().hex[:8]}").room
            rooms.join(peer, room.id)
            for u in users:
                get_realtime_store().register(u.user_id, api.backend.register(new_connection_id()))
            sender = api.backend.register(new_connection_id())
            get_realtime_store().register(owner.user_id, sender)

            def events(i: int) -> dict[str, dict[str, Any]]:
                cid = api.backend.register(new_connection_id())
                frame = {
                    "action": "sendMessage",
                    "roomId": str(room.id),
                    "clientMessageId": f"cold-{i}",
                    "body": "hi",
                }
                job = FanoutJob(
                    room.id, {"type": "message", "message": {"seq": i}}, (owner.user_id, peer.user_id)
                )
                return {
                    "ws_default": message_event(owner, sender, "not json", route_key="$default"),
                    "ws_ping": message_event(owner, sender, {"action": "ping"}),
                    "ws_connect": connect_event(peer, cid),
                    "ws_disconnect": disconnect_event(peer, cid),
                    "ws_messages": message_event(owner, sender, frame),
                    "fanout": {
                        "Records": [
                            {
                                "messageId": f"m-{i}",
                                "receiptHandle": "h",
                                "body": job.to_json(),
                                "attributes": {
                                    "ApproximateReceiveCount": "1",
                                    "SentTimestamp": "0",
                                    "SenderId": "x",
                                },
                                "messageAttributes": {},
                                "md5OfBody": "0",
                                "eventSource": "aws:sqs",
                                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fanout",
                                "awsRegion": "us-east-1",
                            }
                        ]
                    },
                }

            samples: dict[str, list[float]] = {}
            inits: dict[str, list[float]] = {}
            imports: dict[str, list[str]] = {}
            for i in range(runs):
                samples.setdefault("baseline", []).append(_child("baseline", {})["s"])
                for name, event in events(i).items():
                    res = _child(str(ROOT / "functions" / name / "handler.py"), event)
                    samples.setdefault(name, []).append(res["s"])
                    inits.setdefault(name, []).append(res["init"])
                    imports[name] = res["imports"]
            base = statistics.median(samples["baseline"])
            out: dict[str, Any] = {"baseline_s": round(base, 3)}
            for name, values in samples.items():
                if name == "baseline":
                    continue
                med = statistics.median(values)
                out[name] = {
                    "s": round(med, 3),
                    "x_baseline": round(med / base, 2),
                    # Init (import + module-level priming) vs the first invocation's own work.
                    "init_s": round(statistics.median(inits[name]), 3),
                    "invoke_s": round(
                        statistics.median(v - i for v, i in zip(values, inits[name], strict=True)), 3
                    ),
                    "imports": imports[name],
                }
            return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(quiet(lambda: run(args.runs)), indent=1))


if __name__ == "__main__":
    main()
