"""The shared Lambda layer (requirements.txt + the chatflow package), built WITHOUT Docker.

``PythonLayerVersion`` bundles in Docker, which this project's machines and CI runners do not have.
:class:`PipLayerBundling` is CDK local bundling: ``pip install`` with the Lambda platform flags
(manylinux aarch64 wheels for the runtime's Python), so the result is what Lambda on arm64 runs
even when synthesized on x86_64. The chatflow package itself is pure Python and copied in
afterwards (its dependencies are exactly requirements.txt; boto3 is in the runtime).

The asset hash is computed from the inputs (requirements, package sources, runtime, platform), so
CDK neither fingerprints a large directory nor re-bundles when nothing changed. Tests skip bundling
(``aws:cdk:bundling-stacks: []``); the hash then still identifies the inputs.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.catalog import ROOT

PACKAGE_DIR = ROOT / "layers" / "chatflow"
REQUIREMENTS = ROOT / "requirements.txt"
#: Wheel tags Lambda's arm64 runtimes accept (Amazon Linux 2023, glibc 2.34): newer binary wheels
#: (psycopg-binary 3.3) publish only manylinux_2_28 tags.
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64")
#: Provided by the Lambda runtime: a second, different botocore in the layer would shadow the
#: runtime's and break its boto3 (aws-xray-sdk pulls botocore in as a dependency).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
_SOURCE_SUFFIXES = (".py", ".sql", ".typed", ".toml", ".json")


def source_hash(python_version: str) -> str:
    """A hash of everything that goes into the layer (changes -> new layer version)."""
    digest = hashlib.sha256()
    digest.update(f"{python_version}|{','.join(PLATFORMS)}|{','.join(RUNTIME_PROVIDED)}".encode())
    digest.update(REQUIREMENTS.read_bytes())
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.is_file() and path.suffix in _SOURCE_SUFFIXES and "egg-info" not in path.as_posix():
            digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@jsii.implements(ILocalBundling)
class PipLayerBundling:
    """Runs pip on the host instead of in a Docker container."""

    def __init__(self, python_version: str) -> None:
        self.python_version = python_version

    def try_bundle(self, output_dir: str, *_args: Any, **_kwargs: Any) -> bool:
        target = Path(output_dir) / "python"
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(  # noqa: S603 -- fixed argv, no shell
            [
                *pip,
                "-r",
                str(REQUIREMENTS),
                "--target",
                str(target),
                *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
                "--implementation",
                "cp",
                "--python-version",
                self.python_version,
                "--only-binary=:all:",
                "--upgrade",
            ],
            check=True,
        )
        # The chatflow package is pure Python: a copy is exactly what pip would install, without
        # a build backend (and its download) in the way.
        shutil.copytree(
            PACKAGE_DIR / "chatflow",
            target / "chatflow",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
        # Byte-code and metadata of the build are dead weight in the layer zip.
        junk = [*target.rglob("__pycache__"), *target.glob("*.egg-info"), target / "bin"]
        for name in RUNTIME_PROVIDED:
            junk += [target / name, *target.glob(f"{name}-*.dist-info")]
        for path in junk:
            shutil.rmtree(path, ignore_errors=True)
        return True


def shared_layer(scope: Construct, construct_id: str, runtime: lambda_.Runtime) -> lambda_.LayerVersion:
    python_version = runtime.name.removeprefix("python")
    return lambda_.LayerVersion(
        scope,
        construct_id,
        description="Chatflow: the chatflow package and its pinned dependencies (arm64)",
        compatible_runtimes=[runtime],
        compatible_architectures=[lambda_.Architecture.ARM_64],
        code=lambda_.Code.from_asset(
            str(PACKAGE_DIR),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=source_hash(python_version),
            bundling=BundlingOptions(
                # Never pulled: local bundling always succeeds or raises.
                image=DockerImage.from_registry("public.ecr.aws/sam/build-python" + python_version),
                local=PipLayerBundling(python_version),
                command=["false"],
            ),
        ),
    )
