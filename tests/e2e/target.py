"""What the end-to-end suite runs against (built by the ``e2e_target`` fixture in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from local_stack.gateway import RunningGateway
from tests.e2e.client import Api


@dataclass
class Target:
    ws_url: str
    http_url: str
    max_connections: int
    #: Local only: the gateway itself (fault injection, inspection).
    gateway: RunningGateway | None
    admin_token: str | None
    #: Makes a user an administrator (local: through the users service; remote: not possible).
    promote: Callable[[str], None] | None

    async def admin(self, api: Api) -> str | None:
        """An administrator's access token, or None when the target cannot provide one."""
        if self.admin_token:
            return self.admin_token
        if self.promote is None:
            return None
        admin = await api.new_user("admin")
        self.promote(admin.handle)
        return admin.access_token
