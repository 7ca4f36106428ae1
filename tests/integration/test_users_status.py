"""ensure_active and its Redis status cache (real Redis and Postgres)."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

import psycopg
import pytest
import redis

from chatflow.container import Container
from chatflow.domain.identity import Identity
from chatflow.domain.user_models import UserStatus
from chatflow.domain.users import UserService
from chatflow.errors import Unauthorized
from tests.support.identity import unique_handle

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def service(container: Container) -> UserService:
    return container.users


def _identity(service: UserService) -> Identity:
    pair = service.register(unique_handle(), "correct horse 1")
    return Identity(pair.user.id, pair.user.handle, pair.user.role, int(time.time()), "jti")


def test_cache_fill_never_overwrites_a_change(
    container: Container, chatflow_env: dict[str, str], rds: redis.Redis[str]
) -> None:
    cache = container.user_status_cache
    user_id = uuid.uuid4()
    banned = UserStatus("banned", 200.5, "user", "x")
    stale = UserStatus("active", 0.0, "user", "x")
    cache.put(user_id, banned)  # the ban writes through...
    cache.fill(user_id, stale)  # ...a slower reader that loaded the old row cannot undo it
    assert cache.get(user_id) == banned
    cache.put(user_id, stale)
    assert cache.get(user_id) == stale
    key = f"{chatflow_env['REDIS_KEY_PREFIX']}user:{user_id}:status"
    assert rds.ttl(key) > 0  # bounded memory; correctness never waits for it
    rds.set(key, "garbage")
    assert cache.get(user_id) is None  # unknown format = miss


def test_ensure_active_uses_and_fills_the_cache(service: UserService, rds: redis.Redis[str], db: DB) -> None:
    identity = _identity(service)
    assert service.cache.get(identity.user_id) is None
    assert service.ensure_active(identity) == identity
    assert service.cache.get(identity.user_id) is not None
    # A change made behind the service's back (raw SQL) is NOT seen while cached: every writer must
    # go through UserService (ban/unban/logout-all/set_role), which writes the cache through.
    db.execute("UPDATE users SET status = 'banned' WHERE id = %s", (identity.user_id,))
    assert service.ensure_active(identity) == identity
    admin = replace(_identity(service), role="admin")
    service.set_role(admin.handle, "admin")
    db.execute("UPDATE users SET status = 'active' WHERE id = %s", (identity.user_id,))
    service.ban(admin, identity.user_id)
    with pytest.raises(Unauthorized):
        service.ensure_active(identity)


def test_ensure_active_falls_back_to_postgres_when_redis_is_down(
    service: UserService, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = _identity(service)

    class DownCache:
        def get(self, user_id: uuid.UUID) -> UserStatus | None:
            raise redis.ConnectionError("down")

        def fill(self, user_id: uuid.UUID, status: UserStatus) -> None:
            raise redis.ConnectionError("down")

        def put(self, user_id: uuid.UUID, status: UserStatus) -> None:
            raise redis.ConnectionError("down")

    service.cache = DownCache()
    assert service.ensure_active(identity).user_id == identity.user_id  # read from Postgres
    service.repo.ban(identity.user_id, [])
    with pytest.raises(Unauthorized):
        service.ensure_active(identity)  # Postgres decides while Redis is down


def test_unknown_user_is_refused(service: UserService) -> None:
    ghost = Identity(uuid.uuid4(), "ghost", "user", int(time.time()), "j")
    with pytest.raises(Unauthorized):
        service.ensure_active(ghost)


def test_tokens_issued_before_logout_everywhere_are_void(service: UserService) -> None:
    pair = service.register(unique_handle(), "correct horse 1")
    before = Identity(pair.user.id, pair.user.handle, "user", int(time.time()) - 5, "j")
    service.logout(pair.refresh_token, everywhere=True)
    with pytest.raises(Unauthorized) as info:
        service.ensure_active(before)
    assert info.value.code == "token_revoked"


def test_concurrent_refreshes_of_one_token_never_both_succeed(service: UserService) -> None:
    """The row lock serializes them: one rotates, the other is reuse and revokes the family."""
    from concurrent.futures import ThreadPoolExecutor

    pair = service.register(unique_handle(), "correct horse 1")

    def attempt() -> str | None:
        try:
            return service.refresh(pair.refresh_token).refresh_token
        except Unauthorized:
            return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: attempt(), range(2)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    with pytest.raises(Unauthorized):
        service.refresh(winners[0])  # the loser's reuse revoked the whole family
