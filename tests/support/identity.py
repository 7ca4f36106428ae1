"""Helpers for tests that need users and tokens (reusable by every area).

- :func:`http_client` -- an :class:`~tests.support.apigw.HttpApiClient` over the real authorizer
  and http_api handlers (call it after the ``chatflow_env`` fixture set the environment).
- :func:`register` -- a new user with a unique handle; returns the token-pair JSON.
- :func:`promote` -- make a user admin the way operators do (the admin CLI's code path).
"""

from __future__ import annotations

import secrets
from typing import Any

from tests.support.apigw import HttpApiClient
from tests.support.lambdas import load_handler


def http_client() -> HttpApiClient:
    return HttpApiClient({"authorizer": load_handler("authorizer"), "http_api": load_handler("http_api")})


def unique_handle(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def register(
    client: HttpApiClient, handle: str | None = None, password: str = "correct horse 1"
) -> dict[str, Any]:
    handle = handle or unique_handle()
    resp = client.post("/auth/register", json={"handle": handle, "password": password})
    assert resp.status == 201, resp.body
    body: dict[str, Any] = resp.json
    return body


def promote(handle: str) -> None:
    from chatflow.admin_cli import main

    assert main(["promote", handle]) == 0
