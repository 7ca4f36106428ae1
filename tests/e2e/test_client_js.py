"""The JavaScript client's own tests (clients/js/test, Node's built-in runner): its rules, a
scripted server for protocol edges, and the end-to-end file against this suite's target (the
local stack started by tests/e2e/conftest.py, or CHATFLOW_WS_URL / CHATFLOW_HTTP_URL).

Node 20 has no global WebSocket: the tests use the ``ws`` package (package.json devDependencies;
``make test`` runs ``npm ci`` when it is missing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.target import Target
from tests.support.node_tests import run_node_tests

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_javascript_client_suite(e2e_target: Target) -> None:
    assert (ROOT / "node_modules" / "ws").is_dir(), "the ws package is missing: run npm ci"
    env = {"CHATFLOW_HTTP_URL": e2e_target.http_url, "CHATFLOW_WS_URL": e2e_target.ws_url}
    output = run_node_tests("clients/js/test/", env=env)
    assert "skipped 0" in output, "the end-to-end tests were skipped:\n" + output[-4000:]
