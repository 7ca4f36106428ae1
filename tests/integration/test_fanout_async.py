"""The asynchronous fan-out path: sendMessage in a room above the threshold enqueues jobs on SQS;
the ``fanout`` function (an SQS consumer) delivers them.

SQS is the local stack's (local_stack.sqs, the SQS JSON API over HTTP on loopback, reached
through ``AWS_ENDPOINT_URL`` as the adapter's boto3 client would reach LocalStack); everything else
is real too: Postgres, Redis, and the @connections / PutEvents endpoints on loopback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import boto3
import psycopg
import pytest

from chatflow.adapters.sqs_fanout import CHUNK_MEMBERS, FanoutJob, SqsFanoutQueue, chunk_jobs
from chatflow.domain.identity import Identity
from chatflow.domain.rooms import RoomService
from chatflow.settings import get_settings
from tests.support.apigw import lambda_context
from tests.support.lambdas import load_handler, load_handler_module, reset_handlers
from tests.support.rooms import insert_user
from tests.support.ws_harness import WsHarness, ws_harness

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

DB = psycopg.Connection[dict[str, Any]]
REGION = "us-east-1"


@pytest.fixture
def sqs_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SQSClient, str]]:
    from local_stack.eventbridge import LocalEventBus, running_eventbridge_api
    from tests.support.settings import reset_settings_cache

    with running_eventbridge_api(LocalEventBus(name="aws")) as aws:
        monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
        reset_settings_cache()
        client = boto3.client(
            "sqs",
            region_name=REGION,
            endpoint_url=aws.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        url = client.create_queue(QueueName=f"fanout-{uuid4().hex[:6]}")["QueueUrl"]
        yield client, url
    reset_settings_cache()


@pytest.fixture
def ws(
    chatflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, sqs_queue: tuple[SQSClient, str]
) -> Iterator[WsHarness]:
    env = {"FANOUT_QUEUE_URL": sqs_queue[1], "FANOUT_ASYNC_THRESHOLD": "2"}
    with ws_harness(monkeypatch, env) as harness:
        yield harness


def _drain(client: SQSClient, url: str) -> list[dict[str, Any]]:
    """Receive every queued message as Lambda's SQS event records."""
    records: list[dict[str, Any]] = []
    while True:
        got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
        messages = got.get("Messages", [])
        if not messages:
            return records
        for m in messages:
            records.append(
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {
                        "ApproximateReceiveCount": "1",
                        "SentTimestamp": str(int(time.time() * 1000)),
                        "SenderId": "AIDAEXAMPLE",
                        "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
                    },
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:fanout",
                    "awsRegion": REGION,
                }
            )
            client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def _consume(records: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = load_handler("fanout")({"Records": records}, lambda_context("fanout"))
    return result


@pytest.fixture
def big_room(rooms: RoomService, db: DB, ws: WsHarness) -> tuple[Identity, list[Identity], UUID]:
    owner = insert_user(db)
    members = [insert_user(db) for _ in range(3)]
    room = rooms.create_channel(owner, "public", f"big-{uuid4().hex[:8]}").room
    for m in members:
        rooms.join(m, room.id)
    return owner, members, room.id


def test_large_room_is_fanned_out_through_the_queue(
    rooms: RoomService,
    ws: WsHarness,
    db: DB,
    sqs_queue: tuple[SQSClient, str],
    big_room: tuple[Identity, list[Identity], UUID],
) -> None:
    client, url = sqs_queue
    owner, members, room_id = big_room
    outsider = insert_user(db)
    sender = ws.connected(owner)
    owner_other = ws.connected(owner)
    member_cids = {m.user_id: [ws.connected(m), ws.connected(m)] for m in members}
    outsider_cid = ws.connected(outsider)
    ws.clear()

    ack = ws.send(
        sender, {"action": "sendMessage", "roomId": str(room_id), "clientMessageId": "q-1", "body": "hi all"}
    )
    assert ack["type"] == "ack"
    assert all(ws.received(c, "message") == [] for cids in member_cids.values() for c in cids)  # not yet

    leaver = members[0]
    rooms.leave(leaver, room_id)  # removed between enqueue and delivery: gets nothing

    records = _drain(client, url)
    assert len(records) == 1  # 4 members -> one chunk
    assert _consume(records) == {"batchItemFailures": []}

    for user_id, cids in member_cids.items():
        expected = 0 if user_id == leaver.user_id else 1
        for cid in cids:
            got = ws.received(cid, "message")
            assert len(got) == expected, (user_id, cid)
            if expected:
                assert got[0]["message"]["id"] == ack["messageId"]
    assert len(ws.received(owner_other, "message")) == 1  # the sender's other device
    assert ws.received(sender, "message") == []  # not the sending connection
    assert ws.received(outsider_cid) == []


def test_partial_batch_failure_retries_only_the_failed_record(
    ws: WsHarness, big_room: tuple[Identity, list[Identity], UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, members, room_id = big_room
    cid = ws.connected(members[1])
    broken_room = uuid4()
    frame = {"type": "message", "message": {"roomId": str(room_id), "seq": 1}}
    good = FanoutJob(room_id, frame, tuple(m.user_id for m in members))
    bad = FanoutJob(broken_room, frame, tuple(m.user_id for m in members))
    malformed_body = '{"v": 99}'

    directory = load_handler_module("fanout").container.room_directory
    original = directory.members_among

    def members_among(room: UUID, user_ids: Any) -> Any:
        if room == broken_room:  # an outage of the member cache (and its read-through) for this record
            raise ConnectionError("member cache unavailable")
        return original(room, user_ids)

    monkeypatch.setattr(directory, "members_among", members_among)
    records: list[dict[str, Any]] = [
        {"messageId": "m-good", "body": good.to_json()},
        {"messageId": "m-bad", "body": bad.to_json()},
        {"messageId": "m-malformed", "body": malformed_body},
    ]
    for r in records:
        r.update(
            receiptHandle="h",
            attributes={"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "x"},
            messageAttributes={},
            md5OfBody="0",
            eventSource="aws:sqs",
            eventSourceARN="arn:aws:sqs:us-east-1:123456789012:fanout",
            awsRegion=REGION,
        )
    result = _consume(records)
    # Only the record that failed is retried; a malformed job is dropped (it cannot heal).
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    assert ws.received(cid, "message") == [frame]


def test_enqueue_chunks_members_and_batches_sends(
    sqs_queue: tuple[SQSClient, str], chatflow_env: dict[str, str]
) -> None:
    client, url = sqs_queue
    members = [uuid4() for _ in range(CHUNK_MEMBERS * 2 + 1)]
    room_id = uuid4()
    SqsFanoutQueue(get_settings(), queue_url=url).enqueue(
        room_id, {"type": "message"}, member_ids=members, exclude_connection="c="
    )
    jobs = [FanoutJob.from_json(r["body"]) for r in _drain(client, url)]
    assert len(jobs) == 3
    assert sorted(len(j.member_ids) for j in jobs) == [1, CHUNK_MEMBERS, CHUNK_MEMBERS]
    assert {m for j in jobs for m in j.member_ids} == set(members)
    assert all(j.exclude_connection == "c=" and j.room_id == room_id for j in jobs)


def test_jobs_round_trip_and_reject_garbage() -> None:
    job = chunk_jobs(uuid4(), {"type": "x", "body": "é"}, [uuid4(), uuid4()], None)[0]
    assert FanoutJob.from_json(job.to_json()) == job
    from chatflow.errors import InvalidInput

    for garbage in ("nope", "{}", json.dumps({"v": 1, "roomId": "x", "frame": {}, "memberIds": []})):
        with pytest.raises(InvalidInput):
            FanoutJob.from_json(garbage)


def test_queue_outage_falls_back_to_synchronous_delivery(
    ws: WsHarness, big_room: tuple[Identity, list[Identity], UUID], monkeypatch: pytest.MonkeyPatch
) -> None:

    owner, members, room_id = big_room
    monkeypatch.setenv("FANOUT_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/no-such-queue")
    reset_handlers()  # the functions cold-start with that queue
    sender = ws.connected(owner)
    cid = ws.connected(members[0])
    ack = ws.send(
        sender, {"action": "sendMessage", "roomId": str(room_id), "clientMessageId": "q-x", "body": "b"}
    )
    assert ack["type"] == "ack"
    assert [f["message"]["id"] for f in ws.received(cid, "message")] == [ack["messageId"]]


def test_gone_recipient_on_the_queue_path_loses_only_its_own_connection(
    ws: WsHarness, sqs_queue: tuple[SQSClient, str], big_room: tuple[Identity, list[Identity], UUID]
) -> None:
    client, url = sqs_queue
    owner, members, room_id = big_room
    sender = ws.connected(owner)
    live, stale = ws.connected(members[0]), ws.connected(members[0])
    ws.backend.mark_gone(stale)  # the device vanished; $disconnect never came
    ws.clear()
    ack = ws.send(
        sender, {"action": "sendMessage", "roomId": str(room_id), "clientMessageId": "q-g", "body": "hey"}
    )
    assert ack["type"] == "ack"
    assert _consume(_drain(client, url)) == {"batchItemFailures": []}  # a 410 is not a failure

    assert len(ws.received(live, "message")) == 1
    registered = {
        t.connection_id
        for t in ws.container.connection_registry.connections_of([owner.user_id, members[0].user_id])
    }
    assert stale not in registered  # THAT recipient's connection is removed...
    assert {sender, live} <= registered  # ...never the sender's, nor the user's live device


# --- presence to large audiences (issue 9 §3) -------------------------------------------------------


@pytest.fixture
def presence_ws(
    chatflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, sqs_queue: tuple[SQSClient, str]
) -> Iterator[WsHarness]:
    """Presence audiences above 2 co-members go through the queue (messages stay synchronous)."""
    env = {"FANOUT_QUEUE_URL": sqs_queue[1], "PRESENCE_ASYNC_THRESHOLD": "2"}
    with ws_harness(monkeypatch, env) as harness:
        yield harness


def test_presence_to_a_large_audience_is_queued_and_superseded_transitions_are_dropped(
    presence_ws: WsHarness, sqs_queue: tuple[SQSClient, str], rooms: RoomService, db: DB
) -> None:
    ws, (client, url) = presence_ws, sqs_queue
    owner, members = insert_user(db), [insert_user(db) for _ in range(3)]
    room = rooms.create_channel(owner, "public", f"pres-{uuid4().hex[:8]}").room
    for m in members:
        rooms.join(m, room.id)
    listeners = {m.user_id: ws.connected(m) for m in members}
    _drain(client, url)  # the members' own announcements (their audiences are large too)
    ws.clear()

    first = ws.connected(owner)  # online: 3 co-members > 2 -> queued, $connect posts nothing
    assert all(ws.received(cid, "presence") == [] for cid in listeners.values())
    online_records = _drain(client, url)
    jobs = [FanoutJob.from_json(r["body"]) for r in online_records]
    assert [(j.room_id, j.presence is not None and j.presence.online) for j in jobs] == [(None, True)]
    assert set(jobs[0].member_ids) == {m.user_id for m in members}
    assert _consume(online_records) == {"batchItemFailures": []}
    for cid in listeners.values():
        (frame,) = ws.received(cid, "presence")
        assert frame == jobs[0].frame
        assert frame["status"] == "online"
    ws.clear()

    # A cycling client: offline then online again before the consumer runs. Only the settled
    # state is delivered; the superseded offline job is dropped by its version.
    ws.disconnect(first)
    ws.connected(owner)
    records = _drain(client, url)
    assert len(records) == 2
    assert _consume(records) == {"batchItemFailures": []}
    queued = [FanoutJob.from_json(r["body"]) for r in records]
    (back,) = [j for j in queued if j.presence is not None and j.presence.online]
    for cid in listeners.values():
        assert [(f["status"], f["version"]) for f in ws.received(cid, "presence")] == [
            ("online", back.frame["version"])
        ]


def test_presence_jobs_round_trip_and_reject_a_bad_stamp() -> None:
    from chatflow.adapters.sqs_fanout import PresenceStamp
    from chatflow.errors import InvalidInput

    stamp = PresenceStamp(uuid4(), 1795626217007, False)
    (job,) = chunk_jobs(None, {"type": "presence"}, [uuid4()], None, presence=stamp)
    assert FanoutJob.from_json(job.to_json()) == job
    body = json.loads(job.to_json())
    for bad in ({**body, "presence": None}, {**body, "presence": {**body["presence"], "online": "no"}}):
        with pytest.raises(InvalidInput):
            FanoutJob.from_json(json.dumps(bad))


def test_members_among_checks_a_chunk_against_the_current_members(
    rooms: RoomService, db: DB, ws: WsHarness, big_room: tuple[Identity, list[Identity], UUID]
) -> None:
    """A fan-out job re-checks ITS chunk (SMISMEMBER on the cached set), whether the room's member
    set is cached or read through after an invalidation."""
    owner, members, room_id = big_room
    directory = ws.container.room_directory
    outsider = insert_user(db)
    chunk = [owner.user_id, members[0].user_id, members[1].user_id, outsider.user_id]
    directory.member_ids(room_id)  # cached now
    assert directory.members_among(room_id, chunk) == {owner.user_id, members[0].user_id, members[1].user_id}
    rooms.leave(members[0], room_id)  # invalidates the cached set: read-through
    assert directory.members_among(room_id, chunk) == {owner.user_id, members[1].user_id}
    assert directory.members_among(room_id, chunk) == {owner.user_id, members[1].user_id}  # cached again
    assert directory.members_among(room_id, []) == set()
