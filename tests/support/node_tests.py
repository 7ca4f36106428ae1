"""Run JavaScript test files with Node's built-in runner (``node --test``) from a pytest test."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_node_tests(path: str, *, env: Mapping[str, str] | None = None, timeout_s: float = 600) -> str:
    """``node --test <path>`` in the repository root; fails the calling test unless every test
    passed. Returns the runner's output (spec reporter)."""
    node = shutil.which("node")
    assert node is not None, "node (20+) is required for the JavaScript tests"
    done = subprocess.run(
        [node, "--test", "--test-reporter=spec", path],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    assert "fail 0" in output, output[-4000:]
    return output
