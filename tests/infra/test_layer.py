"""The Docker-free layer bundling (infra/layer.py).

pip is replaced by a recorder here (the real bundle downloads ~48 MB of wheels; CI's `cdk synth`
and `make synth` run it for real): the test checks the exact pip invocation for Lambda's arm64
platform, that the chatflow package is copied in, and that runtime-provided packages are dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra import layer


def test_pip_targets_lambda_arm64_and_package_is_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_pip(argv: list[str], check: bool) -> Any:
        calls.append(argv)
        target = Path(argv[argv.index("--target") + 1])
        for name in ("pydantic", "botocore", "boto3", "s3transfer"):
            (target / name).mkdir(parents=True)
        (target / "botocore-1.0.dist-info").mkdir()
        return None

    monkeypatch.setattr("infra.layer.subprocess.run", fake_pip)
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


def test_layer_hash_changes_with_its_inputs() -> None:
    assert layer.source_hash("3.13") == layer.source_hash("3.13")
    assert layer.source_hash("3.13") != layer.source_hash("3.12")
