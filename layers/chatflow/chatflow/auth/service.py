"""The container's :class:`chatflow.domain.users.UserService`, wired to the real adapters.

REALTIME wires its SessionTerminator with :func:`set_session_terminator` (e.g. at the http_api
handler's cold start); until then bans close no live sockets themselves, and $connect / every
frame handler refuses the banned user through ``ensure_active``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, cast

from chatflow.domain.users import UserService
from chatflow.ports import SessionTerminator
from chatflow.settings import get_settings

if TYPE_CHECKING:
    from chatflow.auth.tokens import TokenSigner
    from chatflow.ports import UserRepository

_lock = threading.Lock()
_service: UserService | None = None
_terminator: SessionTerminator | None = None


def _flush_outbox() -> object:
    from chatflow.events.relay import flush_after_commit

    return flush_after_commit()


def _signer() -> TokenSigner:
    # Imported when a token is first issued: pyjwt + cryptography cost ~0.05 s of imports, and
    # the functions that only call ensure_active (ws_connect, ws_messages) never sign anything.
    from chatflow.auth.tokens import get_signer

    return get_signer()


class _PostgresUsersOnFirstUse:
    """``PostgresUserRepository``, imported and built on first use: ensure_active's warm path
    (the Redis status cache) then never loads psycopg -- ~0.1 s of $connect's cold start
    (docs/performance.md, "Cold start"); a cache miss or any write pays it as before."""

    def __init__(self) -> None:
        self._repo: UserRepository | None = None

    def __getattr__(self, name: str) -> Any:
        if self._repo is None:
            from chatflow.adapters.postgres.users_repo import PostgresUserRepository

            self._repo = PostgresUserRepository()
        return getattr(self._repo, name)


def get_user_service() -> UserService:
    global _service
    if _service is None:
        with _lock:
            if _service is None:
                from chatflow.adapters.redis_user_status import RedisLoginThrottle, RedisUserStatusCache

                settings = get_settings()
                _service = UserService(
                    cast("UserRepository", _PostgresUsersOnFirstUse()),
                    RedisUserStatusCache(),
                    _signer,
                    refresh_ttl_s=settings.refresh_token_ttl_s,
                    oidc_issuer=settings.oidc_issuer,
                    session_terminator=_terminator,
                    after_commit=_flush_outbox,
                    login_throttle=RedisLoginThrottle(
                        settings.login_max_failures, settings.login_failure_window_s
                    ),
                )
    return _service


def set_session_terminator(terminator: SessionTerminator | None) -> None:
    """Wire the adapter that closes a banned user's live sessions (REALTIME)."""
    global _terminator
    _terminator = terminator
    if _service is not None:
        _service.session_terminator = terminator


def get_session_terminator() -> SessionTerminator | None:
    return _terminator


def reset_user_service() -> None:
    """For tests that change settings."""
    global _service
    with _lock:
        _service = None
