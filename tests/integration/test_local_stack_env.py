"""``python -m local_stack`` passes the environment through to the functions (docs/local-stack.md).

The real command in a subprocess, with a non-default ``REDIS_KEY_PREFIX``: the admin CLI run with
the same environment deletes a user, and the functions see it at once -- the user's token is dead
and their open WebSocket is closed. (The stack used to force ``cf:`` on the functions, so the CLI
wrote a status the functions never read and a deleted user's token kept working.)
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    http_url: str
    ws_url: str
    management_endpoint: str
    env: dict[str, str]


def _read_lines(stream: Any, out: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):
        out.put(line)


@pytest.fixture
def stack(chatflow_env: dict[str, str]) -> Iterator[Stack]:
    env = {
        **os.environ,
        **chatflow_env,
        "REDIS_KEY_PREFIX": chatflow_env["REDIS_KEY_PREFIX"] + "ops:",
        "LOCAL_LAMBDA_CONCURRENCY": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "local_stack", "--quiet", "--no-migrate"]
        + [f"--{name}-port=0" for name in ("http", "ws", "connections", "events", "web")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    found: dict[str, str] = {}
    seen: list[str] = []
    deadline = time.monotonic() + 90
    try:
        while len(found) < 3 and time.monotonic() < deadline and proc.poll() is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            words = line.split()
            # The banner: "HTTP API  <url>", "WebSocket API  <url>?token=...", "@connections  <url>".
            for label, key, at in (("HTTP", "http", 2), ("WebSocket", "ws", 2), ("@connections", "mgmt", 1)):
                if len(words) > at and words[0] == label:
                    found[key] = words[at]
        assert len(found) == 3, "local stack did not start:\n" + "".join(seen[-40:])
        yield Stack(found["http"], found["ws"].split("?")[0], found["mgmt"], env)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _call(
    stack: Stack, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(
        stack.http_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "content-type": "application/json",
            **({"authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_an_operator_tool_with_the_same_environment_affects_the_functions(stack: Stack) -> None:
    handle = f"op{secrets.token_hex(4)}"
    status, pair = _call(
        stack, "POST", "/auth/register", {"handle": handle, "password": "correct-horse-battery"}
    )
    assert status == 201, pair
    token = pair["accessToken"]
    assert _call(stack, "GET", "/users/me", token=token)[0] == 200  # fills the status cache

    # The functions used the environment's prefix (never the stack's old forced "cf:").
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    user_id = pair["user"]["id"]
    assert client.exists(f"{stack.env['REDIS_KEY_PREFIX']}user:{user_id}:status")
    assert not client.exists(f"cf:user:{user_id}:status")

    with connect(f"{stack.ws_url}?token={token}", open_timeout=30) as socket:
        socket.send(json.dumps({"action": "ping"}))
        assert json.loads(socket.recv(timeout=30))["type"] == "pong"

        cli_env = {**stack.env, "WS_MANAGEMENT_ENDPOINT": stack.management_endpoint}
        done = subprocess.run(
            [sys.executable, "-m", "chatflow.admin_cli", "delete", handle],
            cwd=ROOT,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]

        # The token is dead for the functions at once, and the live socket was closed.
        status, body = _call(stack, "GET", "/users/me", token=token)
        assert (status, body["error"]["code"]) == (401, "account_disabled")
        with pytest.raises(ConnectionClosed):
            socket.recv(timeout=5)
