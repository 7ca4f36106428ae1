# ruff: noqa: S608 -- f-strings only splice the constant column lists below, never input.
"""Postgres adapter of :class:`chatflow.domain.ports.UserRepository`: users and refresh tokens.

Everything here reads and writes the WRITER: these reads decide authorization (a replica that
lags behind a ban must never re-admit the user).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors

from chatflow.adapters.postgres import outbox
from chatflow.adapters.postgres.pool import PostgresPools
from chatflow.domain.passwords import UNUSABLE_PASSWORD
from chatflow.domain.user_models import (
    NewUser,
    RefreshOutcome,
    RefreshTokenRecord,
    RevokedFamily,
    User,
    UserStatus,
)
from chatflow.errors import Conflict, NotFound
from chatflow.events.schemas import DomainEvent
from chatflow.settings import Settings

_USER_COLUMNS = "id, handle, display_name, role, status, tokens_valid_after, created_at"
_STATUS_COLUMNS = "status, extract(epoch FROM tokens_valid_after)::float8 AS tva, role, handle"


def _user(row: dict[str, Any]) -> User:
    return User(
        id=row["id"],
        handle=row["handle"],
        display_name=row["display_name"],
        role=row["role"],
        status=row["status"],
        tokens_valid_after=row["tokens_valid_after"],
        created_at=row["created_at"],
    )


def _status(row: dict[str, Any]) -> UserStatus:
    return UserStatus(
        status=row["status"], tokens_valid_after=float(row["tva"]), role=row["role"], handle=row["handle"]
    )


class PostgresUserRepository:
    def __init__(self, pools: PostgresPools, settings: Settings) -> None:
        self._pools = pools
        self._source = settings.event_source

    def create_user(self, user: NewUser) -> User:
        try:
            with self._pools.writer().connection() as conn:
                row = conn.execute(
                    f"""INSERT INTO users (id, handle, display_name, password_hash, role)
                        VALUES (%s, %s, %s, %s, %s) RETURNING {_USER_COLUMNS}""",
                    (user.id, user.handle, user.display_name, user.password_hash, user.role),
                ).fetchone()
        except pg_errors.UniqueViolation:
            raise Conflict("this handle is taken", code="handle_taken") from None
        assert row is not None
        return _user(row)

    def get_user(self, user_id: UUID) -> User | None:
        with self._pools.writer().connection() as conn:
            row = conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = %s", (user_id,)).fetchone()
        return _user(row) if row else None

    def find_credentials(self, handle: str) -> tuple[User, str] | None:
        with self._pools.writer().connection() as conn:
            row = conn.execute(
                f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE lower(handle) = lower(%s)",
                (handle,),
            ).fetchone()
        return (_user(row), str(row["password_hash"])) if row else None

    def user_status(self, user_id: UUID) -> UserStatus | None:
        with self._pools.writer().connection() as conn:
            row = conn.execute(f"SELECT {_STATUS_COLUMNS} FROM users WHERE id = %s", (user_id,)).fetchone()
        return _status(row) if row else None

    def provision_external(self, user_id: UUID, issuer: str, subject: str, handle: str) -> UserStatus:
        with self._pools.writer().connection() as conn, conn.transaction():
            candidates = [handle] + [f"{handle[:27]}-{secrets.token_hex(2)}" for _ in range(5)]
            for candidate in candidates:
                try:
                    with conn.transaction():  # savepoint: a taken handle only retries this insert
                        conn.execute(
                            """INSERT INTO users (id, handle, display_name, password_hash,
                                                  external_issuer, external_subject)
                               VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING""",
                            (user_id, candidate, candidate, UNUSABLE_PASSWORD, issuer, subject),
                        )
                    break
                except pg_errors.UniqueViolation:
                    continue
            else:
                raise Conflict("could not allocate a handle for this external identity")
            row = conn.execute(f"SELECT {_STATUS_COLUMNS} FROM users WHERE id = %s", (user_id,)).fetchone()
        assert row is not None
        return _status(row)

    def set_role(self, handle: str, role: str) -> User | None:
        with self._pools.writer().connection() as conn:
            row = conn.execute(
                f"""UPDATE users SET role = %s, updated_at = now() WHERE lower(handle) = lower(%s)
                    RETURNING {_USER_COLUMNS}""",
                (role, handle),
            ).fetchone()
        return _user(row) if row else None

    def ban(self, user_id: UUID, events: Sequence[DomainEvent]) -> tuple[UserStatus, bool]:
        with self._pools.writer().connection() as conn, conn.transaction():
            current = conn.execute("SELECT status FROM users WHERE id = %s FOR UPDATE", (user_id,)).fetchone()
            if current is None or current["status"] == "deleted":
                raise NotFound("user not found")
            changed = current["status"] != "banned"
            if changed:
                conn.execute(
                    """UPDATE users SET status = 'banned', tokens_valid_after = now(), updated_at = now()
                       WHERE id = %s""",
                    (user_id,),
                )
                self._revoke_all_refresh_tokens(conn, user_id)
                outbox.enqueue_many(conn, events, source=self._source)
            row = conn.execute(f"SELECT {_STATUS_COLUMNS} FROM users WHERE id = %s", (user_id,)).fetchone()
        assert row is not None
        return _status(row), changed

    def unban(self, user_id: UUID) -> UserStatus:
        with self._pools.writer().connection() as conn:
            row = conn.execute(
                f"""UPDATE users SET status = 'active', updated_at = now()
                    WHERE id = %s AND status <> 'deleted' RETURNING {_STATUS_COLUMNS}""",
                (user_id,),
            ).fetchone()
        if row is None:
            raise NotFound("user not found")
        return _status(row)

    def delete_user(self, user_id: UUID) -> UserStatus:
        return self._void_sessions(user_id, deleting=True)

    def logout_everywhere(self, user_id: UUID) -> UserStatus:
        return self._void_sessions(user_id, deleting=False)

    def _void_sessions(self, user_id: UUID, *, deleting: bool) -> UserStatus:
        """Every access token issued so far void, every refresh token revoked (and the user marked
        deleted), in one transaction."""
        status_change = "status = 'deleted', " if deleting else ""
        with self._pools.writer().connection() as conn, conn.transaction():
            row = conn.execute(
                f"""UPDATE users SET {status_change}tokens_valid_after = now(), updated_at = now()
                    WHERE id = %s RETURNING {_STATUS_COLUMNS}""",
                (user_id,),
            ).fetchone()
            if row is None:
                raise NotFound("user not found")
            self._revoke_all_refresh_tokens(conn, user_id)
        return _status(row)

    def change_password(self, user_id: UUID, old_hash: str, new_hash: str) -> UserStatus | None:
        with self._pools.writer().connection() as conn, conn.transaction():
            row = conn.execute(
                f"""UPDATE users SET password_hash = %s, tokens_valid_after = now(), updated_at = now()
                    WHERE id = %s AND password_hash = %s AND status = 'active'
                    RETURNING {_STATUS_COLUMNS}""",
                (new_hash, user_id, old_hash),
            ).fetchone()
            if row is None:
                return None
            self._revoke_all_refresh_tokens(conn, user_id)
        return _status(row)

    def store_refresh_token(self, token: RefreshTokenRecord) -> None:
        with self._pools.writer().connection() as conn:
            conn.execute(
                """INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
                   VALUES (%s, %s, %s, %s, %s)""",
                (token.id, token.user_id, token.family_id, token.token_hash, token.expires_at),
            )

    def rotate_refresh_token(self, token_hash: bytes, replacement: RefreshTokenRecord) -> RefreshOutcome:
        with self._pools.writer().connection() as conn, conn.transaction():
            row = conn.execute(
                f"""SELECT rt.id AS token_id, rt.family_id, rt.rotated_at, rt.revoked_at,
                           rt.expires_at <= now() AS expired,
                           rt.created_at < u.tokens_valid_after AS predates_logout,
                           {", ".join("u." + c.strip() for c in _USER_COLUMNS.split(","))}
                    FROM refresh_tokens rt JOIN users u ON u.id = rt.user_id
                    WHERE rt.token_hash = %s
                    FOR UPDATE OF rt""",
                (token_hash,),
            ).fetchone()
            if row is None:
                return RefreshOutcome("unknown")
            if row["revoked_at"] is not None:
                return RefreshOutcome("revoked")
            if row["rotated_at"] is not None:
                # Theft detection: a rotated token came back; revoke every token of the family.
                self._revoke_family(conn, row["family_id"])
                return RefreshOutcome("reused")
            if row["expired"]:
                return RefreshOutcome("expired")
            if row["status"] != "active" or row["predates_logout"]:
                self._revoke_family(conn, row["family_id"])
                return RefreshOutcome("inactive")
            conn.execute("UPDATE refresh_tokens SET rotated_at = now() WHERE id = %s", (row["token_id"],))
            conn.execute(
                """INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
                   VALUES (%s, %s, %s, %s, %s)""",
                (replacement.id, row["id"], row["family_id"], replacement.token_hash, replacement.expires_at),
            )
        return RefreshOutcome("rotated", _user(row))

    def revoke_refresh_family(self, token_hash: bytes) -> RevokedFamily | None:
        with self._pools.writer().connection() as conn, conn.transaction():
            row = conn.execute(
                """SELECT rt.user_id, rt.family_id,
                          rt.revoked_at IS NULL AND rt.rotated_at IS NULL AND rt.expires_at > now()
                          AND rt.created_at >= u.tokens_valid_after AS live
                   FROM refresh_tokens rt JOIN users u ON u.id = rt.user_id
                   WHERE rt.token_hash = %s
                   FOR UPDATE OF rt""",
                (token_hash,),
            ).fetchone()
            if row is None:
                return None
            self._revoke_family(conn, row["family_id"])
        return RevokedFamily(user_id=row["user_id"], was_live=bool(row["live"]))

    def update_password_hash(self, user_id: UUID, old_hash: str, new_hash: str) -> bool:
        with self._pools.writer().connection() as conn:
            cur = conn.execute(
                """UPDATE users SET password_hash = %s, updated_at = now()
                   WHERE id = %s AND password_hash = %s""",
                (new_hash, user_id, old_hash),
            )
        return cur.rowcount == 1

    @staticmethod
    def _revoke_family(conn: psycopg.Connection[Any], family_id: UUID) -> None:
        conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = %s AND revoked_at IS NULL",
            (family_id,),
        )

    @staticmethod
    def _revoke_all_refresh_tokens(conn: psycopg.Connection[Any], user_id: UUID) -> None:
        conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
            (user_id,),
        )
