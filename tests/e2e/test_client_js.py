"""The JavaScript client's own tests (clients/js/test, Node's built-in runner): its rules, a
scripted server for protocol edges, and the end-to-end file against this suite's target (the
local stack started by tests/e2e/conftest.py, or CHATFLOW_WS_URL / CHATFLOW_HTTP_URL).

Node 20 has no global WebSocket: the tests use the ``ws`` package (package.json devDependencies;
``make test`` runs ``npm ci`` when it is missing)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.target import Target

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_javascript_client_suite(e2e_target: Target) -> None:
    node = shutil.which("node")
    assert node is not None, "node (20+) is required for the JavaScript client's tests"
    assert (ROOT / "node_modules" / "ws").is_dir(), "the ws package is missing: run npm ci"
    env = {**os.environ, "CHATFLOW_HTTP_URL": e2e_target.http_url, "CHATFLOW_WS_URL": e2e_target.ws_url}
    done = subprocess.run(
        [node, "--test", "--test-reporter=spec", "clients/js/test/"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    assert "fail 0" in output, output[-4000:]
    assert "skipped 0" in output, "the end-to-end tests were skipped:\n" + output[-4000:]
