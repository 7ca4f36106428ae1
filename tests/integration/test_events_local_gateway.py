"""The event side through the whole local gateway (make dev's stack): a message sent over a real
WebSocket is stored with its outbox row, flushed to the gateway's EventBridge emulator, routed by
the catalog's rules to the notifications and analytics functions (worker processes, invoked like
Lambda with real EventBridge envelopes), and read back over the HTTP API."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from websockets.asyncio.client import connect

from chatflow.domain.identity import Identity
from local_stack.gateway import GatewayConfig, RunningGateway, running_gateway
from tests.support.gateway_log import eventually
from tests.support.rooms import access_token, insert_user

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture(scope="module")
def gateway(chatflow_env: dict[str, str]) -> Iterator[RunningGateway]:
    import os

    env = {**chatflow_env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    with running_gateway(GatewayConfig(env=env)) as running:
        yield running


def _http(gw: RunningGateway, method: str, path: str, who: Identity, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        gw.http_url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {access_token(who)}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_message_over_websocket_notifies_the_offline_member_and_is_counted(
    gateway: RunningGateway, db: DB
) -> None:
    owner = insert_user(db)
    reader = insert_user(db)
    admin = insert_user(db, role="admin")
    status, room = _http(gateway, "POST", "/rooms", owner, {"kind": "public", "name": f"ev-{owner.handle}"})
    assert status == 201, room
    room_id = room["id"]
    assert _http(gateway, "POST", f"/rooms/{room_id}/join", reader)[0] == 200

    async def send() -> Any:
        async with connect(f"{gateway.ws_url}?token={access_token(owner)}") as ws:
            frame = {
                "action": "sendMessage",
                "roomId": room_id,
                "clientMessageId": "gw-1",
                "body": f"hello @{reader.handle}",
                "requestId": "r1",
            }
            await ws.send(json.dumps(frame))
            while True:
                answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if answer.get("requestId") == "r1":
                    return answer

    ack = asyncio.run(send())
    assert ack.get("type") != "error", ack

    def unread() -> Any:
        _, body = _http(gateway, "GET", "/notifications", reader)
        return [r for r in body["rooms"] if r["roomId"] == room_id]

    rooms = eventually(unread, timeout=60)
    assert [(r["unreadMessages"], r["unreadMentions"]) for r in rooms] == [(1, 1)]
    _, body = _http(gateway, "GET", "/notifications", reader)
    assert [(i["kind"], i["actorHandle"]) for i in body["items"]] == [("mention", owner.handle)]

    def counted() -> Any:
        _, report = _http(gateway, "GET", "/admin/analytics", admin)
        today = report["daily"][-1]
        return today if today["messagesCreated"] >= 1 and today["connectionsOpened"] >= 1 else None

    assert eventually(counted, timeout=60)
    assert _http(gateway, "GET", "/admin/analytics", owner)[0] == 403


def test_the_catalogs_rules_and_queues_are_there_at_start_as_in_the_cloud(gateway: RunningGateway) -> None:
    """ListRules / ListTargetsByRule / GetFunctionEventInvokeConfig on the running stack answer what
    the CDK app deploys from infra/catalog.py: same rules, patterns, target retry policies, DLQ and
    on-failure queue names (``catalog.target_dlq_name`` / ``async_failure_queue_name``)."""
    import boto3

    from infra import catalog

    endpoint = gateway.gateway.events_url

    def client(service: str) -> Any:
        make: Any = boto3.client
        return make(
            service,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    events, lambda_client, sqs = client("events"), client("lambda"), client("sqs")
    prefix = catalog.name_prefix("test")  # chatflow_env's ENV
    rules = {r["Name"]: r for r in events.list_rules(EventBusName="chatflow")["Rules"]}
    assert set(rules) == {r.name for r in catalog.EVENT_RULES}
    queues = set(sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []))
    for declared in catalog.EVENT_RULES:
        assert json.loads(rules[declared.name]["EventPattern"]) == declared.pattern
        targets = events.list_targets_by_rule(Rule=declared.name, EventBusName="chatflow")["Targets"]
        assert [t["Arn"].rsplit(":", 1)[1] for t in targets] == list(declared.targets)
        for target in targets:
            function = target["Arn"].rsplit(":", 1)[1]
            assert target["RetryPolicy"] == {
                "MaximumRetryAttempts": declared.retry.max_attempts,
                "MaximumEventAgeInSeconds": declared.retry.max_event_age_s,
            }
            dlq = catalog.target_dlq_name(prefix, declared.name, function)
            assert target["DeadLetterConfig"]["Arn"] == f"arn:aws:sqs:us-east-1:000000000000:{dlq}"
            assert f"{endpoint}/000000000000/{dlq}" in queues
    for fn in catalog.FUNCTIONS:
        if fn.async_invoke is None:
            continue
        config = lambda_client.get_function_event_invoke_config(FunctionName=fn.name)
        failures = catalog.async_failure_queue_name(prefix, fn.name)
        assert config["MaximumRetryAttempts"] == fn.async_invoke.max_retry_attempts
        assert config["MaximumEventAgeInSeconds"] == fn.async_invoke.max_event_age_s
        assert config["DestinationConfig"]["OnFailure"]["Destination"].endswith(f":{failures}")
        assert f"{endpoint}/000000000000/{failures}" in queues
    relay = lambda_client.get_function_concurrency(FunctionName="outbox_relay")
    assert relay["ReservedConcurrentExecutions"] == catalog.function("outbox_relay").reserved_concurrency
