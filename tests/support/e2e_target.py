"""The session fixture ``e2e_target``: where the end-to-end and acceptance suites run. ONE target
per test session, shared by tests/e2e and tests/acceptance (one local stack, not one per folder).

Remote target (LocalStack, a deployed stage): ``TARGET_HTTP_URL`` and ``TARGET_WS_URL`` (the older
names ``CHATFLOW_HTTP_URL`` / ``CHATFLOW_WS_URL`` are read too); ``TARGET_ADMIN_TOKEN`` (an
administrator's access token) enables the operator checks; ``TARGET_MAX_CONNECTIONS_PER_USER`` if
the stage changed the default (5).

Unset: the local gateway (the real functions from infra/catalog.py, in worker processes) is started
against this run's throwaway database and Redis prefix (tests/conftest.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.target import Target


def target_env(name: str) -> str | None:
    """``TARGET_<name>``, else the older ``CHATFLOW_<name>`` (empty counts as unset)."""
    return os.environ.get(f"TARGET_{name}") or os.environ.get(f"CHATFLOW_{name}") or None


def remote_urls() -> tuple[str, str] | None:
    http_url, ws_url = target_env("HTTP_URL"), target_env("WS_URL")
    return (http_url, ws_url) if http_url and ws_url else None


def gateway_env(chatflow_env: dict[str, str], **extra: str) -> dict[str, str]:
    """What the local gateway hands its functions in a test run: this run's database, Redis
    prefix and signing keys (the ``chatflow_env`` fixture), this process's environment and
    ``extra``."""
    from local_stack.services import function_env
    from tests.conftest import REDIS_URL

    return function_env(
        chatflow_env["DATABASE_URL"],
        REDIS_URL,
        chatflow_env["JWT_PRIVATE_KEY"],
        chatflow_env["JWT_PUBLIC_KEYS"],
        env_name="test",
        redis_prefix=chatflow_env["REDIS_KEY_PREFIX"],
        base={**os.environ, **extra},
    )


@pytest.fixture(scope="session")
def e2e_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    from tests.e2e.target import Target  # imported here: every test session loads this module

    max_connections = int(target_env("MAX_CONNECTIONS_PER_USER") or "5")
    remote = remote_urls()
    if remote is not None:
        http_url, ws_url = remote
        yield Target(ws_url, http_url, max_connections, None, target_env("ADMIN_TOKEN"), None)
        return

    from local_stack.gateway import GatewayConfig, running_gateway
    from tests.support.identity import promote

    chatflow_env: dict[str, str] = request.getfixturevalue("chatflow_env")
    env = gateway_env(chatflow_env, MAX_CONNECTIONS_PER_USER=str(max_connections))
    with running_gateway(GatewayConfig(env=env, with_eventbridge=True)) as gateway:
        yield Target(gateway.ws_url, gateway.http_url, max_connections, gateway, None, promote)
