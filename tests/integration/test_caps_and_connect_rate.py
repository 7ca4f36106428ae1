"""Presence must not amplify (issue 9 §3): caps on members per room and rooms per user (409
``room_full`` / ``too_many_rooms`` through the real http_api handler, enforced in the transaction
that adds the membership) and a per-user ``$connect`` rate limit (429 ``too_many_connects``
through the real ws_connect handler). Real Postgres and Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from tests.support.lambdas import reset_handlers
from tests.support.rooms import ApiUser, insert_user, run_concurrently
from tests.support.ws_harness import WsHarness

DB = psycopg.Connection[dict[str, Any]]
MakeApiUser = Callable[..., ApiUser]


@pytest.fixture
def caps(monkeypatch: pytest.MonkeyPatch, chatflow_env: dict[str, str]) -> Iterator[None]:
    monkeypatch.setenv("MAX_MEMBERS_PER_ROOM", "3")
    monkeypatch.setenv("MAX_ROOMS_PER_USER", "2")
    reset_handlers()  # the functions cold-start with the caps
    yield
    monkeypatch.undo()
    reset_handlers()


def _room(user: ApiUser, kind: str = "public") -> str:
    created = user.post("/rooms", json={"kind": kind, "name": f"cap-{uuid4().hex[:10]}"})
    assert created.status == 201, created.body
    room_id: str = created.json["id"]
    return room_id


def _assert_refused(response: Any, code: str, limit: int) -> None:
    assert response.status == 409, response.body
    assert response.json["error"]["code"] == code
    assert response.json["error"]["details"] == {"limit": limit}


def test_a_full_room_refuses_joins_and_additions(caps: None, make_api_user: MakeApiUser) -> None:
    owner, a, b, c = (make_api_user() for _ in range(4))
    room = _room(owner)
    assert a.post(f"/rooms/{room}/join").status == 200
    assert owner.post(f"/rooms/{room}/members", json={"userId": b.id}).status == 201  # 3 members
    _assert_refused(c.post(f"/rooms/{room}/join"), "room_full", 3)
    _assert_refused(owner.post(f"/rooms/{room}/members", json={"userId": c.id}), "room_full", 3)
    assert a.post(f"/rooms/{room}/join").json["error"]["code"] == "already_member"  # not "full"
    assert a.post(f"/rooms/{room}/leave").status == 204  # a place frees up
    assert c.post(f"/rooms/{room}/join").status == 200
    assert owner.get(f"/rooms/{room}").json["memberCount"] == 3


def test_a_user_in_the_maximum_of_rooms_cannot_join_create_or_open_a_dm(
    caps: None, make_api_user: MakeApiUser
) -> None:
    busy, other, third = make_api_user(), make_api_user(), make_api_user()
    _room(busy)
    elsewhere = _room(other)
    assert busy.post(f"/rooms/{elsewhere}/join").status == 200  # busy: 2 rooms
    _assert_refused(busy.post("/rooms", json={"kind": "private", "name": "one-more"}), "too_many_rooms", 2)
    _assert_refused(busy.post(f"/rooms/{_room(third)}/join"), "too_many_rooms", 2)
    _assert_refused(busy.post("/dms", json={"userId": third.id}), "too_many_rooms", 2)
    _assert_refused(third.post("/dms", json={"userId": busy.id}), "too_many_rooms", 2)  # either side
    _assert_refused(
        third.post(f"/rooms/{_room(third)}/members", json={"userId": busy.id}), "too_many_rooms", 2
    )
    assert len(busy.get("/rooms").json["rooms"]) == 2


def test_concurrent_joins_never_pass_the_room_cap(caps: None, make_api_user: MakeApiUser) -> None:
    owner = make_api_user()
    room = _room(owner)  # 1 member, 2 places left
    joiners = [make_api_user() for _ in range(6)]
    statuses = run_concurrently(len(joiners), lambda i: joiners[i].post(f"/rooms/{room}/join").status)
    assert sorted(statuses) == [200, 200, 409, 409, 409, 409]  # type: ignore[type-var]
    assert owner.get(f"/rooms/{room}").json["memberCount"] == 3


def test_connect_rate_limit_per_user_answers_429(
    ws: WsHarness, db: DB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_CONNECTS_PER_MINUTE", "3")
    reset_handlers()
    alice, bob = insert_user(db), insert_user(db)
    for _ in range(3):  # a reconnect loop: connect, drop, connect again...
        ws.disconnect(ws.connected(alice))
    _, refused = ws.connect(alice)
    assert refused["statusCode"] == 429, refused
    body = refused["body"]
    assert '"too_many_connects"' in body
    assert ws.container.connection_registry.online_user_ids([alice.user_id]) == set()  # nothing kept
    assert ws.connect(bob)[1]["statusCode"] == 200  # per user: others are not affected
