"""Who is calling: established by the authorizer, re-checked against bans by the handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

Role = Literal["user", "admin"]


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: UUID
    handle: str
    role: Role
    #: Token issue time (epoch seconds, sub-second): tokens issued before a ban/logout-all are void.
    issued_at: float
    token_id: str
    #: Set for users of an external OIDC issuer: their ``sub`` there (see docs/auth.md).
    external_subject: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def to_context(self) -> dict[str, str]:
        """The authorizer context API Gateway passes to the integration (flat strings: a number
        would be re-rendered by the gateway, ``iat`` must survive to the microsecond)."""
        ctx: dict[str, str] = {
            "userId": str(self.user_id),
            "handle": self.handle,
            "role": self.role,
            "iat": repr(float(self.issued_at)),
            "jti": self.token_id,
        }
        if self.external_subject is not None:
            ctx["extSub"] = self.external_subject
        return ctx

    @classmethod
    def from_context(cls, ctx: dict[str, object]) -> Identity:
        """Inverse of :meth:`to_context`; raises KeyError/ValueError on a malformed context."""
        role = str(ctx["role"])
        if role not in ("user", "admin"):
            raise ValueError(f"bad role {role!r}")
        return cls(
            user_id=UUID(str(ctx["userId"])),
            handle=str(ctx["handle"]),
            role=role,  # type: ignore[arg-type]
            issued_at=float(str(ctx["iat"])),
            token_id=str(ctx.get("jti", "")),
            external_subject=str(ctx["extSub"]) if ctx.get("extSub") else None,
        )
