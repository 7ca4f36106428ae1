"""The container's :class:`chatflow.domain.users.UserService`, wired to the real adapters.

REALTIME wires its SessionTerminator with :func:`set_session_terminator` (e.g. at the http_api
handler's cold start); until then bans close no live sockets themselves, and $connect / every
frame handler refuses the banned user through ``ensure_active``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from chatflow.domain.users import UserService
from chatflow.ports import SessionTerminator
from chatflow.settings import get_settings

if TYPE_CHECKING:
    from chatflow.auth.tokens import TokenSigner

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


def get_user_service() -> UserService:
    global _service
    if _service is None:
        with _lock:
            if _service is None:
                from chatflow.adapters.postgres.users_repo import PostgresUserRepository
                from chatflow.adapters.redis_user_status import RedisLoginThrottle, RedisUserStatusCache

                settings = get_settings()
                _service = UserService(
                    PostgresUserRepository(),
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
