"""Cold start of the event functions (notifications, analytics, outbox_relay) vs the issue's
baseline, each sample a fresh interpreter: import the handler the way Lambda does and run its
first invocation with its sample event (events/samples/) against local Postgres/Redis.

The baseline imports boto3, Powertools (Logger, Metrics, Tracer, HTTP resolver), pydantic, pyjwt,
psycopg and redis and creates two boto3 clients. Medians of N runs; results in docs/events.md.

    .venv/bin/python bench/events_cold_start.py [--runs 7]

Uses a throwaway database (created, migrated, dropped) and a throwaway Redis key prefix. Every
notifications/analytics run gets a new event_id, so each is a first delivery (real work: room
members from Postgres, presence from Redis, counters written), not a duplicate.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

BASELINE = """
import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
import pydantic, jwt, psycopg, redis
boto3.client("events", region_name="us-east-1")
boto3.client("apigatewaymanagementapi", region_name="us-east-1", endpoint_url="https://example.com")
"""

INVOKE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("h", {path!r})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
class Context:  # the LambdaContext attributes Powertools reads
    function_name = "bench"; memory_limit_in_mb = 512; aws_request_id = "r-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self): return 30_000
result = m.handler(json.load(open({event!r})), Context())
assert {check}, result
"""

CASES = {
    "notifications": ("message_created", "result['duplicate'] is False and result['countersBumped'] == 1"),
    "analytics": ("connection_opened", "result['duplicate'] is False"),
    "outbox_relay": ("scheduled", "result['failed'] == 0"),
}


def _time(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def _seed(url: str) -> None:
    """The users and room the notifications sample names: alice sends to room 3333..., bob offline."""
    with psycopg.connect(url, autocommit=True) as conn:
        for uid, handle in (
            ("11111111-1111-4111-8111-111111111111", "alice"),
            ("22222222-2222-4222-8222-222222222222", "bob"),
        ):
            conn.execute(
                "INSERT INTO users (id, handle, display_name, password_hash) VALUES (%s, %s, %s, 'bench')",
                (uid, handle, handle),
            )
        room = "33333333-3333-4333-8333-333333333333"
        conn.execute(
            "INSERT INTO rooms (id, kind, name, created_by) VALUES (%s, 'public', 'bench', %s)",
            (room, "11111111-1111-4111-8111-111111111111"),
        )
        for uid in ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"):
            conn.execute("INSERT INTO memberships (room_id, user_id) VALUES (%s, %s)", (room, uid))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from chatflow.adapters.postgres.migrate import migrate

    name = f"chatflow_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rpartition("/")[0] + "/" + name
    env = {
        **os.environ,
        "ENV": "test",
        "DATABASE_URL": url,
        "REDIS_KEY_PREFIX": f"cfbench:{secrets.token_hex(4)}:",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "ChatflowBench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }
    rounds: dict[str, list[float]] = {}
    try:
        migrate(url)
        _seed(url)
        with tempfile.TemporaryDirectory() as tmp:
            raws = {
                fn: json.loads((ROOT / "events" / "samples" / fn / f"{sample}.json").read_text())
                for fn, (sample, _) in CASES.items()
            }
            # Interleaved (baseline, then each function, per round): load from other processes
            # on this shared machine hits every contender alike; ratios are per round.
            for run in range(args.runs):
                rounds.setdefault("baseline", []).append(_time(BASELINE, env))
                for function, (_, check) in CASES.items():
                    raw = raws[function]
                    if "event_id" in raw.get("detail", {}):
                        raw["detail"]["event_id"] = str(uuid.uuid4())
                    path = Path(tmp) / f"{function}-{run}.json"
                    path.write_text(json.dumps(raw))
                    code = INVOKE.format(
                        path=str(ROOT / "functions" / function / "handler.py"), event=str(path), check=check
                    )
                    rounds.setdefault(function, []).append(_time(code, env))
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    base = rounds["baseline"]
    for fn, times in rounds.items():
        ratio = statistics.median(t / b for t, b in zip(times, base, strict=True))
        print(f"{fn:14s} median {statistics.median(times):6.3f} s  {ratio:5.2f}x baseline (per-round median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
