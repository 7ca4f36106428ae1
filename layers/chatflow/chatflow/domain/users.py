"""Users: registration, login, token refresh with rotation, logout, bans, and the ban check.

Handles are 3-32 characters of ``[a-z0-9_.-]``, stored lower-cased (so uniqueness is
case-insensitive; the database enforces it on ``lower(handle)`` as well). Passwords follow
:func:`chatflow.domain.passwords.check_password_policy`.

Tokens: a short-lived ES256 access token (``chatflow.auth.tokens``) plus an opaque refresh token
(256 random bits, stored as its SHA-256 only). Every refresh rotates it; presenting an already
rotated refresh token again revokes its whole family -- one of the two holders is a thief.

:meth:`UserService.ensure_active` is what every handler calls on every request (HTTP, $connect,
every frame): API Gateway may cache authorizer decisions, and the authorizer does no I/O, so
bans, deletions and "log out everywhere" are enforced here, from a Redis cache that changes write
through (a ban is effective at once, never after a TTL). See docs/auth.md.

This module imports no psycopg/redis/boto3: it talks to the ports in :mod:`chatflow.domain.ports`, which
the function's container (:mod:`chatflow.container`) hands to :class:`UserService`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from chatflow.domain.identity import Identity, Role
from chatflow.domain.passwords import (
    DEFAULT_PARAMS,
    ScryptParams,
    check_password_policy,
    dummy_verify,
    hash_password,
    needs_rehash,
    verify_password,
)
from chatflow.domain.user_models import NewUser, RefreshTokenRecord, TokenPair, User, UserStatus
from chatflow.domain.validation import CONTROL_CHARS_C0_C1, HANDLE_RE, normalize_handle
from chatflow.errors import Forbidden, InvalidInput, NotFound, RateLimited, Unauthorized

if TYPE_CHECKING:
    from chatflow.domain.ports import (
        LoginThrottle,
        SessionTerminator,
        TokenIssuer,
        UserRepository,
        UserStatusCache,
    )

log = logging.getLogger(__name__)

DISPLAY_NAME_MAX = 64
REFRESH_PREFIX = "rt_"


def hash_refresh_token(token: str) -> bytes:
    # 256 random bits: a fast hash is enough (no dictionary to attack), and lookups stay indexed.
    return hashlib.sha256(token.encode()).digest()


_INVALID_CREDENTIALS = "invalid handle or password"


def throttle_source(source_ip: str) -> str:
    """The address the sign-in throttle counts: an IPv4 address as is, an IPv6 address by its
    /64 (one subscriber's LAN gets a whole /64, so counting single IPv6 addresses would hand an
    attacker 2^64 fresh budgets); an IPv4-mapped IPv6 address as its IPv4 address."""
    try:
        address = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return source_ip.strip()[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class UserService:
    """The users use cases, over ports. One instance per container (chatflow.container)."""

    def __init__(
        self,
        repo: UserRepository,
        cache: UserStatusCache,
        signer_factory: Callable[[], TokenIssuer],
        *,
        refresh_ttl_s: int,
        oidc_issuer: str | None = None,
        session_terminator: SessionTerminator | None = None,
        after_commit: Callable[[], object] | None = None,
        login_throttle: LoginThrottle | None = None,
        password_params: ScryptParams = DEFAULT_PARAMS,
    ) -> None:
        self.repo = repo
        self.cache = cache
        self._signer_factory = signer_factory
        self.refresh_ttl_s = refresh_ttl_s
        self.oidc_issuer = oidc_issuer
        self.session_terminator = session_terminator
        self._after_commit = after_commit
        self.login_throttle = login_throttle
        self.password_params = password_params

    # --- registration and sessions -------------------------------------------------------------

    def register(self, handle: str, password: str, display_name: str | None = None) -> TokenPair:
        normalized = normalize_handle(handle)
        check_password_policy(password)
        name = (display_name or "").strip() or normalized
        if len(name) > DISPLAY_NAME_MAX:
            raise InvalidInput(f"displayName must be at most {DISPLAY_NAME_MAX} characters")
        if CONTROL_CHARS_C0_C1.search(name):
            # Shown to every room member; a NUL cannot even be stored (Postgres text).
            raise InvalidInput("displayName must not contain control characters", code="invalid_display_name")
        user = self.repo.create_user(
            NewUser(
                id=uuid.uuid4(),
                handle=normalized,
                display_name=name,
                password_hash=hash_password(password, self.password_params),
            )
        )
        return self._new_session(user)

    def login(self, handle: str, password: str, source_ip: str) -> TokenPair:
        """Same answer for an unknown handle and a wrong password (no user enumeration); the
        unknown-handle path still runs one scrypt so timing does not tell them apart either.

        Throttle (docs/auth.md "Brute force"): failures are counted per (handle, source IP) and
        per source IP across handles, each past its free failures making the next attempt wait
        exponentially longer (429 + Retry-After, before the password is even checked). Someone
        failing on purpose from another address therefore never delays the account's owner.
        Unknown handles are counted the same way (the throttle reveals nothing either).

        A correct password stored at a lower scrypt cost than configured is re-hashed."""
        key = handle.strip().lower()[:64]
        ip = throttle_source(source_ip)
        self._check_throttle(key, ip)
        # Only well-formed handles exist: anything else (too long, a NUL Postgres would refuse)
        # is an unknown handle without a lookup.
        found = self.repo.find_credentials(key) if HANDLE_RE.match(key) else None
        if found is None:
            dummy_verify(password, self.password_params)
            self._record_failure(key, ip)
            raise Unauthorized(_INVALID_CREDENTIALS, code="invalid_credentials")
        user, password_hash = found
        if not verify_password(password, password_hash):
            self._record_failure(key, ip)
            raise Unauthorized(_INVALID_CREDENTIALS, code="invalid_credentials")
        self._reset_throttle(key, ip)
        if user.status != "active":
            # Only someone holding the right password learns the account state.
            raise Forbidden("this account is disabled", code="account_disabled")
        if needs_rehash(password_hash, self.password_params):
            self._rehash(user.id, password_hash, password)
        return self._new_session(user)

    def _rehash(self, user_id: uuid.UUID, old_hash: str, password: str) -> None:
        """Store the password at the configured cost; a failure only postpones it to the next
        sign-in (the old hash stays valid)."""
        try:
            upgraded = self.repo.update_password_hash(
                user_id, old_hash, hash_password(password, self.password_params)
            )
        except Exception:
            log.warning("password re-hash failed; retried at the next sign-in", exc_info=True)
            return
        if upgraded:
            log.info("password re-hashed at the current scrypt cost")

    def _check_throttle(self, key: str, ip: str) -> None:
        if self.login_throttle is None:
            return
        try:
            wait = self.login_throttle.retry_after(key, ip)
        except Exception:  # fail open: scrypt already makes each guess expensive
            log.warning("login throttle unavailable", exc_info=True)
            return
        if wait is not None:
            raise RateLimited(
                "too many failed sign-in attempts; try again later",
                code="too_many_attempts",
                retryAfterS=wait,  # camelCase like every other field clients read
            )

    def _record_failure(self, key: str, ip: str) -> None:
        if self.login_throttle is not None:
            try:
                self.login_throttle.record_failure(key, ip)
            except Exception:
                log.warning("login throttle unavailable", exc_info=True)

    def _reset_throttle(self, key: str, ip: str) -> None:
        if self.login_throttle is not None:
            try:
                self.login_throttle.reset(key, ip)
            except Exception:
                log.warning("login throttle unavailable", exc_info=True)

    def refresh(self, refresh_token: str) -> TokenPair:
        new_token, record = self._new_refresh_record_for_rotation()
        outcome = self.repo.rotate_refresh_token(hash_refresh_token(refresh_token), record)
        if outcome.result == "reused":
            log.warning("refresh token reuse detected; token family revoked")
        if outcome.result != "rotated" or outcome.user is None:
            raise Unauthorized("invalid or expired refresh token", code="invalid_refresh_token")
        return self._pair(outcome.user, new_token)

    def logout(self, refresh_token: str, *, everywhere: bool = False) -> None:
        """Revoke the refresh token's family; ``everywhere`` (only with a live refresh token: not
        revoked, rotated or expired) also voids every access token issued so far
        (tokens_valid_after = now) and every other refresh token of the user, and closes every
        live WebSocket of the user (a revoked session stops receiving at once)."""
        revoked = self.repo.revoke_refresh_family(hash_refresh_token(refresh_token))
        if everywhere:
            # Ending every session is only for whoever holds a LIVE token: a revoked, rotated or
            # expired one (an old backup, a leaked log line) must not sign the owner out everywhere.
            if revoked is None or not revoked.was_live:
                raise Unauthorized("invalid or expired refresh token", code="invalid_refresh_token")
            status = self.repo.logout_everywhere(revoked.user_id)
            self._cache_put(revoked.user_id, status)
            self._terminate_sessions(revoked.user_id)

    def change_password(
        self, identity: Identity, current_password: str, new_password: str, source_ip: str
    ) -> TokenPair:
        """Replace the caller's password and end every other session: the new hash at the
        configured scrypt cost, every access token issued so far void (tokens_valid_after = now,
        as "log out everywhere"), every refresh token revoked -- one transaction -- then every live
        WebSocket of the user closed. Returns a fresh pair so this device stays signed in.

        A wrong current password is a failed sign-in for the throttle (per handle and source IP,
        as :meth:`login`): 401 ``invalid_credentials``, and 429 ``too_many_attempts`` past the free
        failures (checked before the password is). The new password follows the policy of
        :meth:`register` (422 ``weak_password``)."""
        key = identity.handle.strip().lower()[:64]
        ip = throttle_source(source_ip)
        self._check_throttle(key, ip)
        check_password_policy(new_password)  # before any scrypt: bad input costs nothing
        found = self.repo.find_credentials(key) if HANDLE_RE.match(key) else None
        if found is None or found[0].id != identity.user_id:
            dummy_verify(current_password, self.password_params)
            self._record_failure(key, ip)
            raise Unauthorized("current password is wrong", code="invalid_credentials")
        user, password_hash = found
        if not verify_password(current_password, password_hash):
            self._record_failure(key, ip)
            raise Unauthorized("current password is wrong", code="invalid_credentials")
        self._reset_throttle(key, ip)
        status = self.repo.change_password(
            user.id, password_hash, hash_password(new_password, self.password_params)
        )
        if status is None:
            # Changed (or the account disabled) since it was read: the current password checked
            # above is no longer the current one.
            raise Unauthorized("current password is wrong", code="invalid_credentials")
        self._cache_put(user.id, status)
        self._terminate_sessions(user.id)
        log.info("password changed; every other session ended")
        valid_after = datetime.fromtimestamp(status.tokens_valid_after, UTC)
        return self._new_session(replace(user, tokens_valid_after=valid_after))

    def me(self, identity: Identity) -> User:
        user = self.repo.get_user(identity.user_id)
        if user is None:
            raise Unauthorized("unknown user")
        return user

    # --- administration ----------------------------------------------------------------------

    def ban(self, actor: Identity, user_id: uuid.UUID) -> tuple[User, int | None]:
        """Ban ``user_id``: status banned, all tokens void, refresh tokens revoked, user.banned
        emitted (outbox, same transaction), then live sessions closed. Idempotent.

        Returns the user and how many live sessions were closed (None: no terminator wired, or
        it failed -- the ban itself is committed and enforced by ensure_active regardless)."""
        self._require_admin(actor)
        if user_id == actor.user_id:
            raise InvalidInput("administrators cannot ban themselves", code="cannot_ban_self")
        from chatflow.events.schemas import UserBanned  # pydantic: only when banning

        status, changed = self.repo.ban(user_id, [UserBanned(user_id=user_id, banned_by=actor.user_id)])
        self._cache_put(user_id, status)
        if changed and self._after_commit is not None:
            self._after_commit()
        closed = self._terminate_sessions(user_id)
        user = self.repo.get_user(user_id)
        assert user is not None
        return user, closed

    def unban(self, actor: Identity, user_id: uuid.UUID) -> User:
        self._require_admin(actor)
        status = self.repo.unban(user_id)
        self._cache_put(user_id, status)
        user = self.repo.get_user(user_id)
        if user is None:
            raise NotFound("user not found")
        return user

    def delete_user(self, handle: str) -> User:
        """Soft-delete (the admin CLI): every token void at once, live sessions closed."""
        found = self.repo.find_credentials(normalize_handle(handle))
        if found is None:
            raise NotFound(f"no user with handle {handle!r}")
        return self._soft_delete(found[0].id)[0]

    def delete_user_by_id(self, actor: Identity, user_id: uuid.UUID) -> tuple[User, int | None]:
        """The admin CLI's soft delete by id (``DELETE /admin/users/{id}``, admins only):
        idempotent, NotFound for an unknown user. Returns the user and how many live sessions
        were closed (None: no terminator wired, or it failed -- as :meth:`ban`)."""
        self._require_admin(actor)
        if user_id == actor.user_id:
            raise InvalidInput("administrators cannot delete themselves", code="cannot_delete_self")
        return self._soft_delete(user_id)

    def _soft_delete(self, user_id: uuid.UUID) -> tuple[User, int | None]:
        self._cache_put(user_id, self.repo.delete_user(user_id))
        closed = self._terminate_sessions(user_id)
        user = self.repo.get_user(user_id)
        assert user is not None
        return user, closed

    def find_by_handle(self, handle: str) -> User:
        """The user with this handle, whatever their status (the admin CLI's ``show``)."""
        found = self.repo.find_credentials(handle.strip().lower())
        if found is None:
            raise NotFound(f"no user with handle {handle!r}")
        return found[0]

    def set_role(self, handle: str, role: Role) -> User:
        """Promote/demote (the admin CLI); effective on the next request (cache written through)."""
        user = self.repo.set_role(normalize_handle(handle), role)
        if user is None:
            raise NotFound(f"no user with handle {handle!r}")
        status = self.repo.user_status(user.id)
        if status is not None:
            self._cache_put(user.id, status)
        return user

    def handle_of(self, user_id: uuid.UUID) -> str | None:
        """The user's current handle (status cache, else Postgres; None: no such user) -- for
        presence snapshots, whose entries name the user."""
        status = self._cache_get(user_id) or self.repo.user_status(user_id)
        return status.handle if status is not None else None

    # --- the per-request check -----------------------------------------------------------------

    def ensure_active(self, identity: Identity, *, cached: UserStatus | None = None) -> Identity:
        """Unauthorized unless the user exists, is active, and the token is not older than
        tokens_valid_after. Returns the identity with the current role and handle (a demoted
        admin loses admin rights at once, whatever the token says).

        ``cached``: the user's status as the caller just read it from the status cache (e.g. in
        one pipeline with its own Redis work); None reads the cache here."""
        status = cached if cached is not None else self._status(identity)
        if status.status != "active":
            raise Unauthorized("this account is disabled", code="account_disabled")
        if identity.issued_at < status.tokens_valid_after:
            raise Unauthorized("token has been revoked", code="token_revoked")
        if status.role != identity.role or status.handle != identity.handle:
            return replace(identity, role=status.role, handle=status.handle)
        return identity

    def _status(self, identity: Identity) -> UserStatus:
        try:
            status = self.cache.get(identity.user_id)
        except Exception:
            log.warning("user status cache unavailable; reading Postgres", exc_info=True)
            # No fill either: against a hung cache each attempt waits out its timeout, and the
            # outage bound (docs/protocol.md, "Outages") counts on one wait per request here.
            return self._status_from_db(identity)
        if status is not None:
            return status
        status = self._status_from_db(identity)
        try:
            self.cache.fill(identity.user_id, status)
        except Exception:  # the cache is an optimisation: Postgres stays the source of truth
            log.warning("user status cache fill failed", exc_info=True)
        return status

    def _status_from_db(self, identity: Identity) -> UserStatus:
        status = self.repo.user_status(identity.user_id)
        if status is None and identity.external_subject is not None and self.oidc_issuer:
            status = self.repo.provision_external(
                identity.user_id, self.oidc_issuer, identity.external_subject, identity.handle
            )
        if status is None:
            raise Unauthorized("unknown user", code="account_disabled")
        return status

    # --- helpers ---------------------------------------------------------------------------------

    def _cache_get(self, user_id: uuid.UUID) -> UserStatus | None:
        try:
            return self.cache.get(user_id)
        except Exception:
            log.warning("user status cache unavailable; reading Postgres", exc_info=True)
            return None

    def _cache_put(self, user_id: uuid.UUID, status: UserStatus) -> None:
        try:
            self.cache.put(user_id, status)
        except Exception:
            # A stale "active" entry could let a banned user in until it expires: surface it.
            log.exception("user status cache write-through failed after a change")
            raise

    def _require_admin(self, actor: Identity) -> None:
        if not actor.is_admin:
            raise Forbidden("administrators only")

    def _terminate_sessions(self, user_id: uuid.UUID) -> int | None:
        if self.session_terminator is None:
            return None
        try:
            return self.session_terminator.terminate_user_sessions(user_id)
        except Exception:
            # The registry entries are removed before DeleteConnection: fan-out skips the
            # sessions either way, and ensure_active refuses their frames.
            log.exception("closing the user's live sessions failed; they receive nothing and are refused")
            return None

    def _new_refresh_record_for_rotation(self) -> tuple[str, RefreshTokenRecord]:
        # user_id/family_id are filled by the repository from the consumed token.
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        record = RefreshTokenRecord(
            id=uuid.uuid4(),
            user_id=uuid.UUID(int=0),
            family_id=uuid.UUID(int=0),
            token_hash=hash_refresh_token(token),
            expires_at=datetime.now(UTC) + timedelta(seconds=self.refresh_ttl_s),
        )
        return token, record

    def _new_session(self, user: User) -> TokenPair:
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        self.repo.store_refresh_token(
            RefreshTokenRecord(
                id=uuid.uuid4(),
                user_id=user.id,
                family_id=uuid.uuid4(),
                token_hash=hash_refresh_token(token),
                expires_at=datetime.now(UTC) + timedelta(seconds=self.refresh_ttl_s),
            )
        )
        return self._pair(user, token)

    def _pair(self, user: User, refresh_token: str) -> TokenPair:
        access = self._signer_factory().issue(
            user_id=user.id,
            handle=user.handle,
            role=user.role,
            not_before=user.tokens_valid_after.timestamp(),
        )
        return TokenPair(access.token, access.expires_in, refresh_token, self.refresh_ttl_s, user)
