"""chatflow.jsonlog writes the lines Powertools' Logger writes (same keys and values), so the
authorizer's logs read like every other function's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from chatflow.jsonlog import JsonLogger


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _emit(logger: Any) -> None:
    logger.set_correlation_id("req-1")
    logger.info("authorizer decision", extra={"api": "http", "allowed": True})
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        logger.exception("boom")


def test_lines_match_powertools(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5f84c7a9-0e7f8a1b2c3d4e5f6a7b8c9d;Parent=1;Sampled=1")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    capsys.readouterr()
    _emit(Logger(service="jsonlog-parity"))
    theirs = _lines(capsys.readouterr().out)
    _emit(JsonLogger("jsonlog-parity"))
    ours = _lines(capsys.readouterr().out)
    assert len(ours) == len(theirs) == 2
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.keys() == reference.keys()
        for key in reference:
            if key not in ("timestamp", "location", "exception", "stack_trace"):
                assert mine[key] == reference[key], key
        assert mine["timestamp"][:16] == reference["timestamp"][:16]
    assert ours[1]["stack_trace"]["type"] == "ZeroDivisionError"
    assert ours[1]["stack_trace"]["frames"][0]["function"] == "_emit"
    assert ours[0]["location"].startswith("_emit:")


def test_level_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "ERROR")
    logger = JsonLogger("jsonlog-level")
    capsys.readouterr()
    logger.info("quiet")
    logger.error("loud")
    assert [line["message"] for line in _lines(capsys.readouterr().out)] == ["loud"]
