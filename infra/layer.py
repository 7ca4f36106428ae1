"""The shared Lambda layer (requirements.txt + the chatflow package), built WITHOUT Docker.

``PythonLayerVersion`` bundles in Docker, which this project's machines and CI runners do not have.
:class:`PipLayerBundling` is CDK local bundling: ``pip install`` with the Lambda platform flags
(manylinux aarch64 wheels for the runtime's Python), so the result is what Lambda on arm64 runs
even when synthesized on x86_64. The chatflow package itself is pure Python and copied in
afterwards (its dependencies are exactly requirements.txt; boto3 is in the runtime).

Bytecode: ``/opt`` is read-only in Lambda, so a layer without ``.pyc`` files compiles every module
it imports at EVERY cold start (~1 s more per cold start, docs/performance.md "Bytecode"). The pyc
files pip writes are for the bundling interpreter's version, so they are dropped, and the tree is
compiled again with an interpreter of the runtime's version when one is on PATH
(``python3.13``; the deploy workflow installs it with actions/setup-python), with
``--invalidation-mode unchecked-hash``: the asset copy gives files new mtimes, and timestamp-based
pyc would then be ignored. Without such an interpreter the layer ships no bytecode and a warning
says so (synth and deploy still work).

The asset hash is computed from the inputs (requirements, package sources, runtime, platform,
bytecode or not), so CDK neither fingerprints a large directory nor re-bundles when nothing
changed. Tests skip bundling (``aws:cdk:bundling-stacks: []``); the hash then still identifies the
inputs.
"""

from __future__ import annotations

import hashlib
import logging
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
#: runtime's and break its boto3 (a dependency that pulls botocore in must not bring its own).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
_SOURCE_SUFFIXES = (".py", ".sql", ".typed", ".toml", ".json")

log = logging.getLogger(__name__)


def bytecode_interpreter(python_version: str) -> str | None:
    """``python<version>`` from PATH if it really is that version (a pyenv shim may exist for a
    version that is not selected and then fails), else None."""
    found = shutil.which(f"python{python_version}")
    if found is None:
        return None
    try:
        probe = subprocess.run(  # noqa: S603 -- fixed argv, no shell
            [found, "-c", "import sys; print(sys.implementation.cache_tag)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    expected = "cpython-" + python_version.replace(".", "")
    return found if probe.returncode == 0 and probe.stdout.strip() == expected else None


def source_hash(python_version: str, bytecode: bool) -> str:
    """A hash of everything that goes into the layer (changes -> new layer version)."""
    digest = hashlib.sha256()
    digest.update(f"{python_version}|{','.join(PLATFORMS)}|{','.join(RUNTIME_PROVIDED)}".encode())
    digest.update(b"|pyc" if bytecode else b"|no-pyc")
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
        #: Decided once, at synth, so the asset hash and the bundle agree.
        self.interpreter = bytecode_interpreter(python_version)

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
        # The build's byte-code (for the bundling interpreter's version, useless to the runtime)
        # and metadata are dead weight in the layer zip; _compile writes the runtime's bytecode.
        junk = [*target.rglob("__pycache__"), *target.glob("*.egg-info"), target / "bin"]
        for name in RUNTIME_PROVIDED:
            junk += [target / name, *target.glob(f"{name}-*.dist-info")]
        for path in junk:
            shutil.rmtree(path, ignore_errors=True)
        self._compile(target)
        return True

    def _compile(self, target: Path) -> None:
        """Byte-compile the layer for the runtime's Python (see the module docstring)."""
        if self.interpreter is None:
            log.warning(
                "No python%s on PATH: the layer ships without bytecode, so Lambda compiles every "
                "imported module at EVERY cold start (about 1 s more). Install Python %s "
                "(e.g. actions/setup-python) and synthesize again.",
                self.python_version,
                self.python_version,
            )
            return
        # -j 0: all cores. A failure on some file (e.g. a vendored test with newer syntax) leaves
        # the rest compiled; it is reported, not fatal.
        done = subprocess.run(  # noqa: S603 -- fixed argv, no shell
            [
                self.interpreter,
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                str(target),
            ],
            check=False,
        )
        if done.returncode != 0:
            log.warning(
                "compileall with %s reported errors (exit %s): modules it could not compile are "
                "compiled at every cold start.",
                self.interpreter,
                done.returncode,
            )


def shared_layer(scope: Construct, construct_id: str, runtime: lambda_.Runtime) -> lambda_.LayerVersion:
    python_version = runtime.name.removeprefix("python")
    bundling = PipLayerBundling(python_version)
    return lambda_.LayerVersion(
        scope,
        construct_id,
        description="Chatflow: the chatflow package and its pinned dependencies (arm64)",
        compatible_runtimes=[runtime],
        compatible_architectures=[lambda_.Architecture.ARM_64],
        code=lambda_.Code.from_asset(
            str(PACKAGE_DIR),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=source_hash(python_version, bytecode=bundling.interpreter is not None),
            bundling=BundlingOptions(
                # Never pulled: local bundling always succeeds or raises.
                image=DockerImage.from_registry("public.ecr.aws/sam/build-python" + python_version),
                local=bundling,
                command=["false"],
            ),
        ),
    )
