"""The web chat page's pure modules (local_stack/web/errors.js, config.js) under Node's built-in
test runner: the error table and the endpoint rules, without a browser (tests/web/*.test.mjs)."""

from __future__ import annotations

import re

from tests.support.node_tests import run_node_tests


def test_web_page_modules() -> None:
    output = run_node_tests("tests/web/", timeout_s=120)
    passed = re.search(r"pass (\d+)", output)
    assert passed is not None, output[-2000:]
    assert int(passed.group(1)) > 0, "no tests ran"
