"""What SigV4 verification costs the local endpoints (local_stack.sigv4).

Measured:

* ``verify()`` alone on a botocore-signed PostToConnection (the fan-out's request: ~200-byte frame);
* a PostToConnection through the real boto3 ``apigatewaymanagementapi`` client to the local
  @connections server (recording backend, answering at once), with verification on and off --
  the end-to-end difference per post is what a fan-out of N recipients pays N times locally.

    .venv/bin/python -m bench.sigv4_verify [--verifies 20000 --posts 2000 --repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from local_stack.connections import running_management_api
from local_stack.sigv4 import DEFAULT_KEY_PAIR, SignedRequest, SigV4Config, verify

FRAME = json.dumps({"type": "message", "roomId": "r" * 36, "message": {"seq": 1, "body": "x" * 120}}).encode()


def verify_us(count: int) -> float:
    url = "http://127.0.0.1:8002/local/@connections/BFHPhfCWIAMCKlQ%3D"
    aws = AWSRequest(method="POST", url=url, data=FRAME)
    SigV4Auth(Credentials(*DEFAULT_KEY_PAIR), "execute-api", "us-east-1").add_auth(aws)
    prepared = aws.prepare()
    parts = urlsplit(prepared.url)
    request = SignedRequest(
        "POST", parts.path, parts.query, [*prepared.headers.items(), ("Host", parts.netloc)], FRAME
    )
    config = SigV4Config()
    started = time.perf_counter()
    for _ in range(count):
        verify(request, service="execute-api", config=config)
    return (time.perf_counter() - started) / count * 1e6


def post_ms(posts: int, *, signed: bool) -> float:
    with running_management_api(sigv4=SigV4Config() if signed else None) as api:
        cid = api.backend.register()
        client: Any = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=api.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=DEFAULT_KEY_PAIR[0],
            aws_secret_access_key=DEFAULT_KEY_PAIR[1],
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )
        for _ in range(50):  # warm: connection pool, botocore's caches
            client.post_to_connection(ConnectionId=cid, Data=FRAME)
        started = time.perf_counter()
        for _ in range(posts):
            client.post_to_connection(ConnectionId=cid, Data=FRAME)
        return (time.perf_counter() - started) / posts * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--verifies", type=int, default=20000)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    verifies = [verify_us(args.verifies) for _ in range(args.repeat)]
    on: list[float] = []
    off: list[float] = []
    for _ in range(args.repeat):  # alternate, so load changes hit both alike
        off.append(post_ms(args.posts, signed=False))
        on.append(post_ms(args.posts, signed=True))
    print(
        json.dumps(
            {
                "verify_us_median": round(statistics.median(verifies), 1),
                "verify_us_runs": [round(v, 1) for v in verifies],
                "post_ms_unverified_median": round(statistics.median(off), 3),
                "post_ms_verified_median": round(statistics.median(on), 3),
                "post_ms_unverified_runs": [round(v, 3) for v in off],
                "post_ms_verified_runs": [round(v, 3) for v in on],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
