"""The web chat page's pure modules (local_stack/web/errors.js, config.js) under Node's built-in
test runner: the error table and the endpoint rules, without a browser (tests/web/*.test.mjs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_web_page_modules() -> None:
    node = shutil.which("node")
    assert node is not None, "node (20+) is required for the web page's module tests"
    done = subprocess.run(
        [node, "--test", "--test-reporter=spec", "tests/web/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "fail 0" in output, output[-4000:]
    assert "pass 0" not in output, "no tests ran:\n" + output[-4000:]
