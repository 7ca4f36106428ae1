"""The Docker-free layer bundling (infra/layer.py).

pip is replaced by a recorder here (the real bundle downloads ~48 MB of wheels; CI's `cdk synth`
and `make synth` run it for real): the tests check the exact pip invocation for Lambda's arm64
platform, that the chatflow package is copied in, that runtime-provided packages are dropped, and
the bytecode step. The bytecode test really compiles, with THIS interpreter standing in for
"python<runtime version>" (its own version is passed as the runtime's, so the tags must match).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs in the dev requirements

from infra import layer
from infra.catalog import ROOT
from infra.functions import RUNTIME

_real_run = subprocess.run
HERE_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
HERE_TAG = sys.implementation.cache_tag  # e.g. cpython-311


def _fake_pip(calls: list[list[str]]) -> Any:
    """subprocess.run that records pip calls (and fakes their output); anything else really runs."""

    def run(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        if argv[1:4] != ["-m", "pip", "install"]:
            return _real_run(argv, *args, **kwargs)
        calls.append(argv)
        target = Path(argv[argv.index("--target") + 1])
        for name in ("pydantic", "botocore", "boto3", "s3transfer"):
            (target / name).mkdir(parents=True)
        (target / "pydantic" / "main.py").write_text("VALUE = 1\n")
        # pip's own bytecode, for the bundling interpreter: must not survive.
        (target / "pydantic" / "__pycache__").mkdir()
        (target / "pydantic" / "__pycache__" / "main.cpython-399.pyc").write_bytes(b"stale")
        (target / "botocore-1.0.dist-info").mkdir()
        return subprocess.CompletedProcess(argv, 0)

    return run


def _no_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("infra.layer.shutil.which", lambda name: None)


def test_pip_targets_lambda_arm64_and_package_is_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("infra.layer.subprocess.run", _fake_pip(calls))
    _no_interpreter(monkeypatch)
    assert layer.PipLayerBundling("3.13").try_bundle(str(tmp_path)) is True

    (argv,) = calls
    assert argv[argv.index("--python-version") + 1] == "3.13"
    assert "--only-binary=:all:" in argv
    platforms = [argv[i + 1] for i, a in enumerate(argv) if a == "--platform"]
    assert platforms
    assert all(p.endswith("_aarch64") for p in platforms)
    assert argv[argv.index("-r") + 1] == str(layer.REQUIREMENTS)
    out = tmp_path / "python"
    assert (out / "chatflow" / "settings.py").is_file()
    assert (out / "chatflow" / "adapters" / "postgres" / "migrations" / "0001_core.sql").is_file()
    assert not list(out.rglob("__pycache__"))
    for provided in ("botocore", "boto3", "s3transfer", "botocore-1.0.dist-info"):
        assert not (out / provided).exists()
    assert (out / "pydantic").is_dir()


def test_the_layer_ships_only_what_lambda_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime package and its dependencies; developer tools (event schemas, invoke, sweep,
    redrive, replay, local migrate) live in chatflow_dev, outside the layer. The one command line
    inside is the admin CLI, which the migrate function runs (make admin)."""
    monkeypatch.setattr("infra.layer.subprocess.run", _fake_pip([]))
    _no_interpreter(monkeypatch)
    assert layer.PipLayerBundling("3.13").try_bundle(str(tmp_path)) is True
    out = tmp_path / "python"
    assert {p.name for p in out.iterdir()} == {"chatflow", "pydantic"}  # pydantic: the fake pip's
    for tool in ("chatflow_dev", "infra", "local_stack", "tests", "functions"):
        assert not list(out.rglob(tool)), tool
    sources = {p.relative_to(out).as_posix(): p.read_text() for p in (out / "chatflow").rglob("*.py")}
    assert "chatflow/container.py" in sources
    command_lines = [name for name, text in sources.items() if "argparse" in text or "__main__" in text]
    assert command_lines == ["chatflow/admin_cli.py"], "developer tools belong to chatflow_dev"


def test_layer_is_compiled_with_the_runtimes_python_when_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def which(name: str) -> str:
        asked.append(name)
        return sys.executable  # really this machine's Python, posing as python<HERE_VERSION>

    monkeypatch.setattr("infra.layer.shutil.which", which)
    monkeypatch.setattr("infra.layer.subprocess.run", _fake_pip([]))
    bundling = layer.PipLayerBundling(HERE_VERSION)
    assert asked == [f"python{HERE_VERSION}"]
    assert bundling.interpreter == sys.executable
    assert bundling.try_bundle(str(tmp_path)) is True

    out = tmp_path / "python"
    for module in (out / "chatflow" / "settings.py", out / "pydantic" / "main.py"):
        pyc = module.parent / "__pycache__" / f"{module.stem}.{HERE_TAG}.pyc"
        assert pyc.is_file(), pyc
        # PEP 552 flags: 0b01 = hash-based, source not checked (valid whatever the mtimes).
        assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b01
    assert not (out / "pydantic" / "__pycache__" / "main.cpython-399.pyc").exists()
    tags = {p.name.split(".")[-2] for p in out.rglob("*.pyc")}
    assert tags == {HERE_TAG}
    # Every .py of the chatflow package got its bytecode.
    sources = list((out / "chatflow").rglob("*.py"))
    assert sources
    for source in sources:
        assert (source.parent / "__pycache__" / f"{source.stem}.{HERE_TAG}.pyc").is_file(), source


def test_without_the_runtimes_python_the_layer_ships_no_bytecode_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _no_interpreter(monkeypatch)
    monkeypatch.setattr("infra.layer.subprocess.run", _fake_pip([]))
    with caplog.at_level(logging.WARNING, logger="infra.layer"):
        assert layer.PipLayerBundling("3.13").try_bundle(str(tmp_path)) is True
    assert not list((tmp_path / "python").rglob("*.pyc"))
    (record,) = [r for r in caplog.records if r.name == "infra.layer"]
    assert record.levelno == logging.WARNING
    assert "python3.13" in record.getMessage()
    assert "every cold start" in record.getMessage().lower()


def test_an_interpreter_of_another_version_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # E.g. a pyenv shim "python3.13" that resolves to another Python (or fails): its pyc would be
    # useless to the runtime.
    monkeypatch.setattr("infra.layer.shutil.which", lambda name: sys.executable)
    assert layer.bytecode_interpreter("3.99") is None
    assert layer.bytecode_interpreter(HERE_VERSION) == sys.executable


def test_layer_hash_changes_with_its_inputs() -> None:
    assert layer.source_hash("3.13", bytecode=True) == layer.source_hash("3.13", bytecode=True)
    assert layer.source_hash("3.13", bytecode=True) != layer.source_hash("3.12", bytecode=True)
    assert layer.source_hash("3.13", bytecode=True) != layer.source_hash("3.13", bytecode=False)


def test_the_deploy_workflow_sets_up_the_runtimes_python() -> None:
    # Without it the deployed layer ships no bytecode (a warning in a CI log nobody reads).
    version = RUNTIME.name.removeprefix("python")
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy-stage.yml").read_text())
    steps = workflow["jobs"]["deploy"]["steps"]
    deploy_at = next(i for i, s in enumerate(steps) if "cdk deploy" in str(s.get("run", "")))
    versions = [
        str(s["with"]["python-version"])
        for s in steps[:deploy_at]
        if str(s.get("uses", "")).startswith("actions/setup-python")
    ]
    assert version in versions
