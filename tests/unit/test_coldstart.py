"""chatflow.coldstart: no cyclic GC during a Lambda init, back on after the first invocation;
and every handler module is wired that way (pause first, resume around the entry point)."""

from __future__ import annotations

import ast
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatflow import coldstart

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted((ROOT / "functions").glob("*/handler.py"))


@pytest.fixture
def collector() -> Iterator[None]:
    """Leave this process's collector as found (frozen objects thawed, enabled)."""
    was_enabled = gc.isenabled()
    yield
    coldstart.resume_gc()
    gc.unfreeze()
    if was_enabled:
        gc.enable()


def test_outside_lambda_nothing_changes(collector: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert coldstart.pause_gc() is False
    assert gc.isenabled()


def test_paused_in_lambda_until_the_first_call_ends_even_when_it_raises(
    collector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "chatflow-test")
    calls: list[bool] = []

    @coldstart.resume_gc_after_first_call
    def handler(fail: bool) -> str:
        calls.append(gc.isenabled())
        if fail:
            raise RuntimeError("first invocation failed")
        return "ok"

    assert coldstart.pause_gc() is True
    assert not gc.isenabled()
    frozen_before = gc.get_freeze_count()
    with pytest.raises(RuntimeError):
        handler(True)
    assert gc.isenabled()
    assert gc.get_freeze_count() > frozen_before  # init's objects moved to the permanent generation
    assert handler(False) == "ok"
    assert calls == [False, True]


def test_resume_does_not_enable_a_collector_it_did_not_pause(collector: None) -> None:
    gc.disable()  # e.g. an embedding runtime's choice
    coldstart.resume_gc()
    assert not gc.isenabled()


@pytest.mark.parametrize("path", HANDLERS, ids=lambda p: p.parent.name)
def test_every_handler_pauses_gc_before_its_imports_and_resumes_after_the_first_call(path: Path) -> None:
    tree = ast.parse(path.read_text())
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    body = [n for n in body if not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
    first, second = body[0], body[1]
    assert isinstance(first, ast.ImportFrom), ast.unparse(first)
    assert first.module == "chatflow.coldstart", ast.unparse(first)
    assert ast.unparse(second) == "pause_gc()"
    entry = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "handler")
    assert ast.unparse(entry.decorator_list[0]) == "resume_gc_after_first_call", "outermost decorator"
