"""The acceptance suite's target (the session's ``e2e_target``, tests/support/e2e_target.py) and
its summary table: every acceptance test with its outcome, skipped ones with their reason.

The table is printed at the end of the run and, when ``ACCEPTANCE_SUMMARY`` (a file path) or
``GITHUB_STEP_SUMMARY`` is set, also written there as Markdown (the deploy workflow's job summary).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.acceptance.support import RUN_ID
from tests.support.e2e_target import remote_urls

_HERE = Path(__file__).resolve().parent


@dataclass
class _Row:
    test: str
    outcome: str
    reason: str = ""


_ROWS: dict[str, _Row] = {}


def _ours(nodeid: str) -> bool:
    return nodeid.startswith("tests/acceptance/") or "/tests/acceptance/" in nodeid


@pytest.hookimpl(tryfirst=True)  # before -m deselects: `-m acceptance` must see the marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().parent == _HERE:
            item.add_marker(pytest.mark.acceptance)


def _reason(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    if report.failed:
        text = str(report.longrepr).strip().splitlines()
        errors = [line for line in text if line.startswith("E ")]
        return (errors[0] if errors else text[-1] if text else "")[:160]
    return ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _ours(report.nodeid):
        return
    name = report.nodeid.split("tests/acceptance/", 1)[-1]
    if hasattr(report, "wasxfail"):
        outcome = "xpassed" if report.passed else "xfailed"
    elif report.skipped:
        outcome = "skipped"
    elif report.failed:
        outcome = "failed" if report.when == "call" else "error"
    elif report.when == "call":
        outcome = "passed"
    else:
        return
    row = _ROWS.get(name)
    if row is None or row.outcome in ("passed",) or outcome in ("failed", "error"):
        _ROWS[name] = _Row(name, outcome, _reason(report))


def _table() -> list[str]:
    counts = Counter(r.outcome for r in _ROWS.values())
    remote = remote_urls()
    target = f"{remote[0]} + {remote[1]}" if remote else "local stack (started by the suite)"
    lines = [
        f"Acceptance suite, run id {RUN_ID}, target {target}: "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
        "",
        "| test | outcome | reason |",
        "| --- | --- | --- |",
    ]
    order = {"failed": 0, "error": 0, "xpassed": 1, "skipped": 2, "xfailed": 3, "passed": 4}
    for row in sorted(_ROWS.values(), key=lambda r: (order.get(r.outcome, 5), r.test)):
        lines.append(f"| {row.test} | {row.outcome} | {row.reason.replace('|', '/')} |")
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _ROWS:
        return
    lines = _table()
    terminalreporter.section("acceptance summary")
    for line in lines:
        terminalreporter.write_line(line)
    for variable in ("ACCEPTANCE_SUMMARY", "GITHUB_STEP_SUMMARY"):
        path = os.environ.get(variable)
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n\n")
