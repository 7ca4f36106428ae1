"""The Python client's README shows the echo bot that the e2e suite runs (no drifting copy), and
the package stays independent of the server code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"


def test_the_readme_echo_bot_is_the_tested_example() -> None:
    readme = (CLIENT / "README.md").read_text()
    block = re.search(r"## An echo bot in 20 lines.*?```python\n(.*?)```", readme, re.S)
    assert block is not None
    example = (CLIENT / "examples" / "echo_bot.py").read_text()
    code = example.split('"""', 2)[2].lstrip("\n")  # without the module docstring
    assert block.group(1) == code
    assert len([line for line in code.splitlines() if line.strip()]) <= 20


def test_the_client_package_imports_nothing_of_the_server() -> None:
    allowed_roots = {"chatflow_client", "aiohttp", "websockets", "__future__"}
    for path in (CLIENT / "chatflow_client").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                assert root in allowed_roots or root in _stdlib(), f"{path.name} imports {name}"


def _stdlib() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names)
