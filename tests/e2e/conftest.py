"""Where the end-to-end suite runs.

Remote target (LocalStack, a real AWS stage): set ``CHATFLOW_WS_URL`` and ``CHATFLOW_HTTP_URL``;
``CHATFLOW_ADMIN_TOKEN`` (an administrator's access token) enables the ban test;
``CHATFLOW_MAX_CONNECTIONS_PER_USER`` if the stage changed the default (5).

Unset: a session fixture starts the local gateway (the real functions from infra/catalog.py, in
worker processes) against this run's throwaway database and Redis prefix (tests/conftest.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from local_stack.gateway import GatewayConfig, running_gateway
from local_stack.services import function_env
from tests.conftest import REDIS_URL
from tests.e2e.target import Target
from tests.support.identity import promote


@pytest.fixture(scope="session")
def e2e_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    max_connections = int(os.environ.get("CHATFLOW_MAX_CONNECTIONS_PER_USER", "5"))
    ws_url, http_url = os.environ.get("CHATFLOW_WS_URL"), os.environ.get("CHATFLOW_HTTP_URL")
    if ws_url and http_url:
        yield Target(ws_url, http_url, max_connections, None, os.environ.get("CHATFLOW_ADMIN_TOKEN"), None)
        return
    chatflow_env: dict[str, str] = request.getfixturevalue("chatflow_env")
    env = function_env(
        chatflow_env["DATABASE_URL"],
        REDIS_URL,
        chatflow_env["JWT_PRIVATE_KEY"],
        chatflow_env["JWT_PUBLIC_KEYS"],
        env_name="test",
        redis_prefix=chatflow_env["REDIS_KEY_PREFIX"],
        base={**os.environ, "MAX_CONNECTIONS_PER_USER": str(max_connections)},
    )

    with running_gateway(GatewayConfig(env=env, with_eventbridge=True)) as gateway:
        yield Target(gateway.ws_url, gateway.http_url, max_connections, gateway, None, promote)
