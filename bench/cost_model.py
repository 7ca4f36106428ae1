"""The cost per message (docs/cost.md): $ per million messages by room size, and a month of 10k
concurrent users, from list prices and this repository's measured figures.

    .venv/bin/python -m bench.cost_model                 # the tables of docs/cost.md
    .venv/bin/python -m bench.cost_model --env dev       # the floor of another environment

Nothing here is measured at run time: the durations are the benchmark results recorded in
docs/performance.md (``MEASURED``, each with its command), the memory sizes come from
``infra/catalog.py``, the floor (Aurora, RDS Proxy, Valkey, NAT, VPC endpoints) from the
environment's settings in ``cdk.json`` (``infra/config.py``), and the prices are us-east-1 list
prices (``PRICES``, each with its page). Where a figure is an assumption rather than a
measurement, ``ASSUMED`` says so and docs/cost.md lists it. ``tests/unit/test_cost_model.py``
checks the arithmetic.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra import catalog  # noqa: E402

HOURS_PER_MONTH = 730.0
MINUTES_PER_MONTH = HOURS_PER_MONTH * 60


@dataclass(frozen=True)
class Prices:
    """us-east-1 list prices in USD, first volume tier, no free tier (pages in ``SOURCES``)."""

    lambda_gb_s_arm: float = 0.0000133334
    lambda_request: float = 0.20 / 1e6
    ws_message: float = 1.00 / 1e6  # per message (32 KB increments), first 1 billion a month
    ws_connection_minute: float = 0.25 / 1e6
    http_request: float = 1.00 / 1e6  # HTTP API, first 300 million a month
    eventbridge_event: float = 1.00 / 1e6  # custom events, 64 KB chunks; rule deliveries free
    sqs_request: float = 0.40 / 1e6  # standard queue, 64 KB chunks
    nat_hour: float = 0.045
    nat_gb: float = 0.045
    endpoint_hour_per_az: float = 0.01  # interface VPC endpoint
    aurora_acu_hour: float = 0.12  # Serverless v2, Aurora Standard
    aurora_io: float = 0.20 / 1e6  # Aurora Standard I/O requests
    proxy_acu_hour: float = 0.015  # RDS Proxy on Serverless v2, billed for at least 8 ACUs
    proxy_min_acu: float = 8.0
    #: ElastiCache node-hours for Valkey (20% below the Redis OSS rate of the same node).
    cache_node_hour: dict[str, float] = field(
        default_factory=lambda: {
            "cache.t4g.micro": 0.0128,
            "cache.t4g.small": 0.0256,
            "cache.r7g.large": 0.1752,
        }
    )
    xray_trace: float = 5.00 / 1e6  # traces recorded


PRICES = Prices()

#: Where each price is published (read by the author in 2025; re-check before quoting a bill).
SOURCES: dict[str, str] = {
    "Lambda (arm64 GB-s, requests)": "https://aws.amazon.com/lambda/pricing/",
    "API Gateway (WebSocket messages, connection minutes; HTTP API)": "https://aws.amazon.com/api-gateway/pricing/",
    "EventBridge (custom events)": "https://aws.amazon.com/eventbridge/pricing/",
    "SQS (standard requests)": "https://aws.amazon.com/sqs/pricing/",
    "NAT gateway, interface endpoints": "https://aws.amazon.com/vpc/pricing/ , https://aws.amazon.com/privatelink/pricing/",
    "Aurora Serverless v2 ACU, I/O": "https://aws.amazon.com/rds/aurora/pricing/",
    "RDS Proxy": "https://aws.amazon.com/rds/proxy/pricing/",
    "ElastiCache for Valkey nodes": "https://aws.amazon.com/elasticache/pricing/",
    "X-Ray traces": "https://aws.amazon.com/xray/pricing/",
}


@dataclass(frozen=True)
class Measured:
    """Benchmark results from docs/performance.md (this 2-core machine; loopback I/O)."""

    #: ``ws_messages`` invocation p50 ms by room size, fan-out inline with the lean @connections
    #: client, outbox flushed after COMMIT. ``python -m bench.ws_send --sizes 10,100``: the quiet
    #: run of 2026-11-25 (24.3 / 122.8 ms, botocore client) times the after/before ratio measured
    #: back to back on 2026-12-03 under load (75.7/155.0 and 179.2/592.0) -- an estimate of the
    #: quiet figures by a measured ratio (docs/performance.md, "Fan-out client and the ack").
    send_p50_ms: dict[int, float] = field(default_factory=lambda: {10: 11.9, 100: 37.2})
    #: ``fanout`` job: wall time of one message to 1,000 connections at 20 ms endpoint latency,
    #: 32 workers, lean client: ``python -m bench.fanout --connections 1000 --latency-ms 20``.
    fanout_ms_per_1000: float = 1100.0
    #: ``ws_ping`` handler (one Redis pipeline): ``python -m bench.registry_scale`` p50.
    ping_ms: float = 0.35
    #: ``$connect`` + ``$disconnect`` handlers together: same command.
    connect_disconnect_ms: float = 29.5


MEASURED = Measured()


@dataclass(frozen=True)
class Assumed:
    """Figures not measured here (docs/cost.md says so next to each use)."""

    #: Bytes through the NAT gateway per PostToConnection (signed request headers ~0.7 KB, a
    #: short message frame ~0.4 KB, the answer ~0.2 KB, TLS records), counted once.
    nat_bytes_per_post: int = 1500
    #: Aurora write I/Os per message (message row, room's last_seq, read position, outbox row
    #: and its claim/mark, WAL): Aurora Standard bills I/O; I/O-Optimized would not.
    aurora_io_per_message: float = 8.0
    #: The SQS fan-out job: SendMessage + the poller's ReceiveMessage + DeleteMessage.
    sqs_requests_per_job: int = 3
    #: The sender's handler waits for SendMessage above the async threshold (AWS in-region).
    sqs_send_ms: float = 15.0
    #: Warm durations of the event consumers per message.created (their first-invoke figures in
    #: the cold-start bench are an upper bound: 100-300 ms with connection set-up).
    notifications_ms: float = 15.0
    analytics_ms: float = 10.0
    #: The authorizer per $connect (cache off for WebSocket: every handshake): its first-invoke
    #: time in the cold-start bench is ~30 ms; warm it verifies one ES256 signature.
    authorizer_ms: float = 5.0
    #: Lambda's billing adds the init phase of SnapStart restores and cold starts; not counted.


ASSUMED = Assumed()


def lambda_invocation(duration_ms: float, memory_mb: int, prices: Prices = PRICES) -> float:
    """$ of one invocation: duration billed per started millisecond, plus the request."""
    billed_s = math.ceil(duration_ms) / 1000.0
    return billed_s * memory_mb / 1024.0 * prices.lambda_gb_s_arm + prices.lambda_request


def memory_of(name: str) -> int:
    return catalog.function(name).memory_mb


def send_duration_ms(recipients: int, measured: Measured = MEASURED) -> float:
    """The ``ws_messages`` handler for a room with ``recipients`` other members, fan-out inline:
    linear through the two measured room sizes (the cost per recipient is the PostToConnection)."""
    (n1, t1), (n2, t2) = sorted(measured.send_p50_ms.items())[:2]
    per_recipient = (t2 - t1) / (n2 - n1)
    return max(1.0, t1 + per_recipient * (recipients + 1 - n1))


@dataclass(frozen=True)
class MessageCost:
    """$ of ONE chat message (sendMessage) in a room, by part."""

    members: int
    parts: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    @property
    def api_gateway_messages(self) -> float:
        return self.parts["API Gateway messages"]


def message_cost(
    members: int,
    *,
    prices: Prices = PRICES,
    measured: Measured = MEASURED,
    assumed: Assumed = ASSUMED,
    async_threshold: int = 200,
    chunk_members: int = 500,
) -> MessageCost:
    """One sendMessage from a member with one connection to a room of ``members`` (one live
    connection each): the frame in, the ack out, one PostToConnection per other member."""
    recipients = members - 1
    parts: dict[str, float] = {}
    # In: the frame; out: the ack (route response) and the other members' frames.
    parts["API Gateway messages"] = (1 + 1 + recipients) * prices.ws_message
    if members <= async_threshold:
        send_ms = send_duration_ms(recipients, measured)
        fanout = 0.0
        sqs = 0.0
    else:
        # The sender's handler posts nothing itself (its time: the room of the smaller size,
        # zero recipients); fan-out jobs of ``chunk_members`` run in ``fanout``.
        send_ms = send_duration_ms(0, measured) + assumed.sqs_send_ms
        jobs = math.ceil(members / chunk_members)
        per_delivery_ms = measured.fanout_ms_per_1000 / 1000.0
        fanout = sum(
            lambda_invocation(
                per_delivery_ms * min(chunk_members, recipients - i * chunk_members), memory_of("fanout")
            )
            for i in range(jobs)
        )
        sqs = jobs * assumed.sqs_requests_per_job * prices.sqs_request
    parts["Lambda ws_messages"] = lambda_invocation(send_ms, memory_of("ws_messages"))
    parts["Lambda fanout"] = fanout
    parts["SQS"] = sqs
    parts["EventBridge"] = prices.eventbridge_event  # one message.created
    parts["Lambda notifications + analytics"] = lambda_invocation(
        assumed.notifications_ms, memory_of("notifications")
    ) + lambda_invocation(assumed.analytics_ms, memory_of("analytics"))
    parts["NAT (PostToConnection bytes)"] = recipients * assumed.nat_bytes_per_post / 1e9 * prices.nat_gb
    parts["Aurora I/O"] = assumed.aurora_io_per_message * prices.aurora_io
    return MessageCost(members, parts)


@dataclass(frozen=True)
class Floor:
    """What an environment costs per month before its first message."""

    parts: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.parts.values())


def environment(name: str) -> dict[str, object]:
    data = json.loads((ROOT / "cdk.json").read_text())["context"]["chatflow:environments"][name]
    return dict(data)


#: Interface endpoints the stack creates when ``vpcEndpoints`` is on (infra/network.py).
INTERFACE_ENDPOINTS = 7


def floor(env: dict[str, object], prices: Prices = PRICES) -> Floor:
    """Aurora at its minimum ACUs (writer + readers), RDS Proxy's minimum, the Valkey nodes,
    NAT gateways and interface endpoints, for ``HOURS_PER_MONTH``."""
    min_acu = float(env["minAcu"])  # type: ignore[arg-type]
    instances = 1 + int(env["readers"])  # type: ignore[call-overload]
    node = str(env["cacheNodeType"])
    nodes = 1 + int(env["cacheReplicas"])  # type: ignore[call-overload]
    azs = int(env["maxAzs"])  # type: ignore[call-overload]
    h = HOURS_PER_MONTH
    parts = {
        f"Aurora Serverless v2 ({instances} x {min_acu:g} ACU)": instances
        * min_acu
        * prices.aurora_acu_hour
        * h,
        f"RDS Proxy (billed at {prices.proxy_min_acu:g} ACU minimum)": max(
            instances * min_acu, prices.proxy_min_acu
        )
        * prices.proxy_acu_hour
        * h,
        f"ElastiCache Valkey ({nodes} x {node})": nodes * prices.cache_node_hour[node] * h,
        f"NAT gateways ({env['natGateways']})": int(env["natGateways"]) * prices.nat_hour * h,  # type: ignore[call-overload]
    }
    if env.get("vpcEndpoints"):
        parts[f"interface endpoints ({INTERFACE_ENDPOINTS} x {azs} AZ)"] = (
            INTERFACE_ENDPOINTS * azs * prices.endpoint_hour_per_az * h
        )
    return Floor(parts)


@dataclass(frozen=True)
class Workload:
    """10k concurrent users (assumptions, docs/cost.md)."""

    users: int = 10_000
    #: Messages each connected user sends per hour, and the room size they go to.
    messages_per_user_hour: float = 10.0
    room_members: int = 10
    #: Pings per connection per hour (the protocol asks for one at least every 5 minutes).
    pings_per_hour: float = 12.0
    #: API Gateway ends every connection after 2 hours: one reconnect per 2 h at least.
    reconnects_per_hour: float = 0.5


def month(workload: Workload, env: dict[str, object], prices: Prices = PRICES) -> dict[str, float]:
    """$ per month of ``workload`` on ``env``, by part."""
    h = HOURS_PER_MONTH
    messages = workload.users * workload.messages_per_user_hour * h
    per_message = message_cost(workload.room_members, prices=prices)
    pings = workload.users * workload.pings_per_hour * h
    reconnects = workload.users * workload.reconnects_per_hour * h
    out = {
        f"messages ({messages / 1e6:,.0f} M, rooms of {workload.room_members})": messages * per_message.total
    }
    out["connection minutes"] = workload.users * MINUTES_PER_MONTH * prices.ws_connection_minute
    out["pings (message in + pong out, ws_ping)"] = pings * (
        2 * prices.ws_message + lambda_invocation(MEASURED.ping_ms, memory_of("ws_ping"))
    )
    out["reconnects ($connect, authorizer, $disconnect)"] = reconnects * (
        lambda_invocation(MEASURED.connect_disconnect_ms / 2, memory_of("ws_connect"))
        + lambda_invocation(MEASURED.connect_disconnect_ms / 2, memory_of("ws_disconnect"))
        + lambda_invocation(ASSUMED.authorizer_ms, memory_of("authorizer"))
    )
    out["floor (Aurora, RDS Proxy, Valkey, NAT, endpoints)"] = floor(env, prices).total
    return out


def _usd(value: float) -> str:
    return f"{value:,.2f}"


def render(env_name: str) -> str:
    env = environment(env_name)
    lines = [
        f"Per million messages (variable cost only), environment `{env_name}`'s memory sizes; "
        "USD, us-east-1 list prices:",
        "",
    ]
    sizes = (2, 10, 100, 1000)
    costs = [message_cost(n) for n in sizes]
    names = list(costs[0].parts)
    lines.append("| part | " + " | ".join(f"room of {n:,}" for n in sizes) + " |")
    lines.append("|---|" + "---|" * len(sizes))
    for name in names:
        lines.append(f"| {name} | " + " | ".join(_usd(c.parts[name] * 1e6) for c in costs) + " |")
    lines.append("| **total** | " + " | ".join(f"**{_usd(c.total * 1e6)}**" for c in costs) + " |")
    lines.append(
        "| API Gateway's message charge alone, share of total | "
        + " | ".join(f"{c.api_gateway_messages / c.total:.0%}" for c in costs)
        + " |"
    )
    lines.append(
        "| per delivered copy (total / (members - 1)) | "
        + " | ".join(_usd(c.total * 1e6 / max(1, c.members - 1)) for c in costs)
        + " |"
    )
    fl = floor(env)
    lines += [
        "",
        f"Floor of `{env_name}` per month (before the first message):",
        "",
        "| part | USD / month |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_usd(v)} |" for k, v in fl.parts.items()]
    lines.append(f"| **total** | **{_usd(fl.total)}** |")
    workload = Workload()
    m = month(workload, env)
    messages = workload.users * workload.messages_per_user_hour * HOURS_PER_MONTH
    total = sum(m.values())
    api_only = messages * (workload.room_members + 1) * PRICES.ws_message
    w = workload
    lines += [
        "",
        f"{w.users:,} concurrent users for a month on `{env_name}` ({w.messages_per_user_hour:g} messages "
        f"per user per hour to rooms of {w.room_members}, a ping every {60 / w.pings_per_hour:g} min, "
        f"a reconnect every {1 / w.reconnects_per_hour:g} h):",
        "",
        "| part | USD / month |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_usd(v)} |" for k, v in m.items()]
    lines.append(f"| **total** | **{_usd(total)}** |")
    lines.append(f"| **per million messages, everything included** | **{_usd(total / messages * 1e6)}** |")
    lines.append(
        f"| API Gateway's message charge alone, per million messages | {_usd(api_only / messages * 1e6)} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="prod", choices=("dev", "staging", "prod"))
    args = parser.parse_args(argv)
    print(render(args.env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
