"""Value objects of users and sessions (plain dataclasses, no I/O).

Shared by the users service (:mod:`chatflow.domain.users`), the ports that return them and the
adapters that build them (Postgres rows, the Redis status cache, the token signer).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from chatflow.domain.identity import Role

Status = Literal["active", "banned", "deleted"]
RefreshResult = Literal["rotated", "unknown", "revoked", "reused", "expired", "inactive"]


@dataclass(frozen=True, slots=True)
class NewUser:
    id: uuid.UUID
    handle: str
    display_name: str
    password_hash: str
    role: Role = "user"


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    handle: str
    display_name: str
    role: Role
    status: Status
    tokens_valid_after: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserStatus:
    """What the per-request check needs, cached in Redis."""

    status: Status
    #: Epoch seconds; tokens with ``iat`` before it are void.
    tokens_valid_after: float
    role: Role
    handle: str

    def admits(self, issued_at: float) -> bool:
        """Is a session whose token was issued at ``issued_at`` (epoch seconds) still valid?
        The rule of ``UserService.ensure_active``, also applied at fan-out (a revoked session
        receives nothing, docs/auth.md "Revocation")."""
        return self.status == "active" and issued_at >= self.tokens_valid_after


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    id: uuid.UUID
    user_id: uuid.UUID
    family_id: uuid.UUID
    token_hash: bytes
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    result: RefreshResult
    user: User | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A signed access token (what the ``TokenIssuer`` port returns)."""

    token: str
    expires_in: int
    claims: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    user: User


@dataclass(frozen=True, slots=True)
class RevokedFamily:
    """What logging out a refresh token found: whose it was, and whether it was live (neither
    revoked, rotated nor expired, and not older than the user's last "log out everywhere")."""

    user_id: uuid.UUID
    was_live: bool


@dataclass(frozen=True, slots=True)
class LoginBackoff:
    """Progressive back-off after failed sign-ins (no hard lock).

    The first ``free_failures`` failures cost nothing; each further one makes the next attempt
    wait ``base_s * 2**k`` seconds (k = 0, 1, 2, ... for the failures past the free ones), capped
    at ``max_s``. Counts are forgotten after a quiet window (the throttle adapter's TTL)."""

    free_failures: int
    base_s: int
    max_s: int

    def delay_s(self, failures: int) -> int:
        """Seconds the next attempt must wait after ``failures`` failures (0: none)."""
        past = failures - self.free_failures
        if past <= 0:
            return 0
        return int(min(self.max_s, self.base_s * 2 ** min(past - 1, 40)))
