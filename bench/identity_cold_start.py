"""Cold start of the authorizer and http_api functions vs the issue's baseline, fresh processes.

Each sample is a new interpreter (wall time including interpreter start): import the handler the
way Lambda does and run its first invocation with a realistic event. The baseline imports boto3,
Powertools (Logger, Metrics, Tracer, HTTP resolver), pydantic, pyjwt, psycopg and redis and
creates two boto3 clients. Medians of N runs; results go to docs/auth.md (Cold start).

    .venv/bin/python bench/identity_cold_start.py [--runs 7]

The http_api sample (GET /health/live) needs no Postgres/Redis; the authorizer sample verifies a
real ES256 token. Run with POWERTOOLS_TRACE_DISABLED=true as tests do (see observability.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
sys.path.insert(0, {root!r})
spec = importlib.util.spec_from_file_location("h", {path!r})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
class Context:  # the LambdaContext attributes Powertools reads
    function_name = "bench"; memory_limit_in_mb = 512; aws_request_id = "r-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self): return 10_000
event = json.load(open({event!r}))
result = m.handler(event, Context())
assert {check}, result
"""


def _keys() -> tuple[str, str]:
    from chatflow.auth.keys import generate_es256_pem_pair

    return generate_es256_pem_pair()


def _time(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    private, public = _keys()
    env = {
        **os.environ,
        "JWT_PRIVATE_KEY": private,
        "JWT_PUBLIC_KEYS": public,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update({k: env[k] for k in ("JWT_PRIVATE_KEY", "JWT_PUBLIC_KEYS")})
    from chatflow.auth.tokens import get_signer
    from tests.support.apigw import http_authorizer_event, http_event

    token = get_signer().issue(user_id=__import__("uuid").uuid4(), handle="bench", role="user").token
    samples = {
        "authorizer": (
            http_authorizer_event(
                http_event("GET", "/users/me", token=token), ("$request.header.Authorization",)
            ),
            "result['isAuthorized'] is True",
        ),
        "http_api": (http_event("GET", "/health/live"), "result['statusCode'] == 200"),
    }
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["baseline"] = statistics.median(_time(BASELINE, env) for _ in range(args.runs))
        for name, (event, check) in samples.items():
            event_path = Path(tmp) / f"{name}.json"
            event_path.write_text(json.dumps(event))
            code = INVOKE.format(
                root=str(ROOT),
                path=str(ROOT / "functions" / name / "handler.py"),
                event=str(event_path),
                check=check,
            )
            results[name] = statistics.median(_time(code, env) for _ in range(args.runs))
    base = results["baseline"]
    for name, seconds in results.items():
        print(f"{name:12s} {seconds:6.3f} s  {seconds / base:5.2f}x baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
