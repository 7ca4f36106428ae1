"""Connection registry, presence, subscriptions and rate limits against the real Redis."""

from __future__ import annotations

import threading
import uuid

import pytest
import redis

from chatflow.adapters.redis_client import RedisConnection
from chatflow.adapters.redis_realtime import RedisRealtimeStore
from chatflow.domain.realtime_models import RemovedConnections, Target
from chatflow.domain.user_models import UserStatus
from chatflow.settings import get_settings


class FakeClock:
    """Time under test control: lets a test age connections without sleeping."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(chatflow_env: dict[str, str], rds: redis.Redis[str], clock: FakeClock) -> RedisRealtimeStore:
    settings = get_settings()
    return RedisRealtimeStore(RedisConnection(settings, client=rds), settings, clock=clock)


def _cid() -> str:
    return uuid.uuid4().hex[:16] + "="


def test_limit_is_atomic_under_50_concurrent_connects(
    store: RedisRealtimeStore, chatflow_env: dict[str, str]
) -> None:
    user = uuid.uuid4()
    results: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def connect(cid: str) -> None:
        # Each thread its own client: real concurrency on the server, not one socket.
        client = redis.Redis.from_url(chatflow_env["REDIS_URL"], decode_responses=True)
        settings = get_settings()
        own = RedisRealtimeStore(RedisConnection(settings, client=client), settings)
        barrier.wait()
        ok = own.register(user, cid, limit=5).accepted
        with lock:
            results.append(ok)
        client.close()

    threads = [threading.Thread(target=connect, args=(_cid(),)) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 5
    assert len(store.connections_of([user])) == 5


def test_first_and_last_connection_flags(store: RedisRealtimeStore) -> None:
    user = uuid.uuid4()
    a, b = _cid(), _cid()
    first = store.register(user, a)
    second = store.register(user, b)
    assert (first.accepted, first.first, first.count) == (True, True, 1)
    assert (second.accepted, second.first, second.count) == (True, False, 2)
    # A retried $connect of the same connection is idempotent.
    assert store.register(user, b) == type(second)(accepted=True, first=False, count=2)
    assert first.presence_version > 0
    assert second.presence_version == 0  # not a transition
    assert store.unregister(user, a).last is False
    gone = store.unregister(user, b)
    assert gone.removed
    assert gone.last
    # Removing again (a late $disconnect after a 410 cleanup) is not a second "offline".
    again = store.unregister(user, b)
    assert not again.removed
    assert not again.last


def test_presence_versions_increase_with_every_transition_and_survive_a_lost_key(
    store: RedisRealtimeStore, rds: redis.Redis[str], clock: FakeClock
) -> None:
    user = uuid.uuid4()
    a, b = _cid(), _cid()
    online = store.register(user, a).presence_version
    assert store.presence_is_current(user, online, online=True)
    assert not store.presence_is_current(user, online, online=False)

    offline = store.unregister(user, a).presence_version
    assert offline > online
    # The "online" was superseded: re-checking it before announcing says so.
    assert not store.presence_is_current(user, online, online=True)
    assert store.presence_is_current(user, offline, online=False)

    # Versions are floored at the clock: losing the key (expiry after 30 idle days, eviction)
    # does not send them back.
    rds.delete(store._presence_version(user))
    clock.now += 0.01
    again = store.register(user, b).presence_version
    assert again > offline
    assert store.unregister(user, b).presence_version > again
    # Non-transitions leave the version alone.
    clock.now += 1
    v = store.register(user, a).presence_version
    assert store.register(user, b).presence_version == 0
    assert store.unregister(user, a).presence_version == 0
    assert store.presence_is_current(user, v, online=True)


def test_online_user_ids(store: RedisRealtimeStore) -> None:
    on, off, never = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    store.register(on, _cid())
    cid = _cid()
    store.register(off, cid)
    store.unregister(off, cid)
    assert store.online_user_ids([on, off, never]) == {on}
    assert store.online_user_ids([]) == set()


def test_stale_connections_expire_without_disconnect(store: RedisRealtimeStore, clock: FakeClock) -> None:
    user = uuid.uuid4()
    settings = get_settings()
    stale = [_cid() for _ in range(settings.max_connections_per_user)]
    for cid in stale:
        assert store.register(user, cid).accepted
    assert not store.register(user, _cid()).accepted  # at the limit
    # No $disconnect ever arrives; time passes beyond the presence TTL.
    clock.now += settings.presence_ttl_s + 1
    assert store.online_user_ids([user]) == set()
    assert store.connections_of([user]) == []
    fresh = store.register(user, _cid())
    # Pruned on touch: the limit counts live connections only; this one is "first" again.
    assert fresh.accepted
    assert fresh.first
    assert fresh.count == 1


def test_ping_refreshes_ttl_until_the_hard_cap(store: RedisRealtimeStore, clock: FakeClock) -> None:
    user = uuid.uuid4()
    cid = _cid()
    settings = get_settings()
    store.register(user, cid)
    elapsed = 0
    step = settings.presence_ttl_s - 60
    while elapsed + step < settings.connection_ttl_s:
        clock.now += step
        elapsed += step
        assert store.touch(user, cid), f"alive after {elapsed}s of pings"
    # Without pings it expires; past the hard cap even pings cannot keep it.
    clock.now += settings.connection_ttl_s
    assert not store.touch(user, cid)
    assert store.online_user_ids([user]) == set()


def test_connections_of_returns_only_those_users(store: RedisRealtimeStore) -> None:
    u1, u2, u3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    c1, c2, c3 = _cid(), _cid(), _cid()
    store.register(u1, c1)
    store.register(u2, c2)
    store.register(u3, c3)
    assert set(store.connections_of([u1, u2, u1])) == {Target(u1, c1), Target(u2, c2)}


def test_subscriptions_follow_the_connection(store: RedisRealtimeStore, clock: FakeClock) -> None:
    user, room = uuid.uuid4(), uuid.uuid4()
    a, b = _cid(), _cid()
    store.register(user, a)
    store.register(user, b)
    assert store.subscribe(user, a, room)
    assert store.subscribe(user, b, room)
    assert set(store.subscribers(room)) == {Target(user, a), Target(user, b)}
    store.unsubscribe(user, a, room)
    assert store.subscribers(room) == [Target(user, b)]
    store.unregister(user, b)
    assert store.subscribers(room) == []
    # An unknown connection cannot subscribe.
    assert not store.subscribe(user, _cid(), room)


def test_remove_all_for_bans(store: RedisRealtimeStore) -> None:
    user, room = uuid.uuid4(), uuid.uuid4()
    cids = {_cid() for _ in range(3)}
    for cid in cids:
        store.register(user, cid)
    store.subscribe(user, next(iter(cids)), room)
    removed = store.remove_all(user)
    assert set(removed.connection_ids) == cids
    assert removed.presence_version > 0
    assert store.connections_of([user]) == []
    assert store.subscribers(room) == []
    assert store.remove_all(user) == RemovedConnections((), presence_version=0)


def test_rate_limit_reads_the_users_status_in_the_same_round_trip_and_loads_its_script_once(
    store: RedisRealtimeStore, rds: redis.Redis[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatflow.adapters import redis_realtime
    from chatflow.adapters.redis_user_status import RedisUserStatusCache

    # A script source the server has never seen: the first EVALSHA gets NOSCRIPT, then loads it.
    monkeypatch.setattr(redis_realtime, "_RATE", redis_realtime._RATE + f"\n-- {uuid.uuid4()}\n")
    settings = get_settings()
    connection = RedisConnection(settings, client=rds)
    fresh = RedisRealtimeStore(connection, settings, clock=store._clock)
    cached, missing = uuid.uuid4(), uuid.uuid4()
    status = UserStatus(status="banned", tokens_valid_after=12.5, role="user", handle="cached")
    RedisUserStatusCache(connection).put(cached, status)
    cid = _cid()
    first = fresh.hit_rate_limit("messages", cid, limit=2, window_s=10, with_status_of=cached)
    second = fresh.hit_rate_limit("messages", cid, limit=2, window_s=10, with_status_of=cached)
    third = fresh.hit_rate_limit("messages", cid, limit=2, window_s=10, with_status_of=missing)
    assert (first.allowed, first.status) == (True, status)
    assert (second.allowed, second.status) == (True, status)
    assert (third.allowed, third.status) == (False, None)
    assert third.retry_after_ms > 0


def test_rate_limit_allows_burst_then_refuses_with_retry_after(
    store: RedisRealtimeStore, clock: FakeClock
) -> None:
    cid = _cid()
    decisions = [store.hit_rate_limit("typing", cid, limit=10, window_s=10) for _ in range(10)]
    assert all(d.allowed for d in decisions)
    refused = store.hit_rate_limit("typing", cid, limit=10, window_s=10)
    assert not refused.allowed
    assert 0 < refused.retry_after_ms <= 1000
    # Another connection has its own budget.
    assert store.hit_rate_limit("typing", _cid(), limit=10, window_s=10).allowed
    clock.now += refused.retry_after_ms / 1000
    assert store.hit_rate_limit("typing", cid, limit=10, window_s=10).allowed


@pytest.mark.parametrize("limit", [3, 7, 30])
def test_rate_limit_burst_is_the_full_limit_when_the_interval_is_not_whole_ms(
    store: RedisRealtimeStore, clock: FakeClock, limit: int
) -> None:
    """10 s / 3 = 3,333.33 ms: rounding the stored state up at every hit shrank the burst."""
    cid = _cid()
    decisions = [store.hit_rate_limit("requests", cid, limit=limit, window_s=10) for _ in range(limit + 1)]
    assert [d.allowed for d in decisions] == [True] * limit + [False]
    clock.now += decisions[-1].retry_after_ms / 1000
    assert store.hit_rate_limit("requests", cid, limit=limit, window_s=10).allowed
