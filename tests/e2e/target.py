"""What the end-to-end suite runs against (built by the ``e2e_target`` fixture in conftest.py)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from chatflow_client import HttpApi
from local_stack.gateway import RunningGateway


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

    async def admin(self, password: str) -> HttpApi | None:
        """The HTTP API signed in as an administrator, or None when the target cannot provide one
        (close it after use)."""
        api = HttpApi(self.http_url)
        if self.admin_token:
            api.use_session(self.admin_token)
            return api
        if self.promote is None:
            await api.close()
            return None
        admin = await api.register(f"admin{secrets.token_hex(4)}", password)
        self.promote(admin.handle)  # the stored role counts on the next request, old token or not
        return api
