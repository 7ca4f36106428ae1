"""The synthesized cloud assembly: what ``npx cdk synth`` wrote into a directory.

Deploy and destroy both work from ONE synthesized assembly (``cdk deploy --app <dir>``), so the
plan printed before a destroy and the prerequisite checks read exactly the templates the CLI acts
on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_STACK = "aws:cloudformation:stack"


class AssemblyError(RuntimeError):
    """The assembly could not be produced or read."""


@dataclass(frozen=True)
class BootstrapRequirement:
    """The CDK bootstrap version the stacks need and the SSM parameter that holds it."""

    version_parameter: str
    min_version: int


@dataclass(frozen=True)
class StackArtifact:
    name: str
    #: None when the stack is environment-agnostic (deploys where the credentials point).
    account: str | None
    region: str | None
    template: dict[str, Any]
    #: Names of the stacks this one needs deployed first.
    dependencies: tuple[str, ...]
    termination_protection: bool


@dataclass(frozen=True)
class Assembly:
    directory: Path
    #: By name, in deploy order (dependencies first).
    stacks: dict[str, StackArtifact]
    bootstrap: BootstrapRequirement | None

    @property
    def deploy_order(self) -> list[str]:
        return list(self.stacks)


def read_assembly(directory: Path) -> Assembly:
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise AssemblyError(f"no cloud assembly in {directory} (manifest.json missing)")
    artifacts: dict[str, Any] = json.loads(manifest_path.read_text())["artifacts"]
    stacks: dict[str, StackArtifact] = {}
    requirement: BootstrapRequirement | None = None
    for name, artifact in artifacts.items():
        if artifact.get("type") != _STACK:
            continue
        props = artifact.get("properties", {})
        account, region = _environment(str(artifact.get("environment", "")))
        stacks[name] = StackArtifact(
            name=name,
            account=account,
            region=region,
            template=json.loads((directory / props["templateFile"]).read_text()),
            dependencies=tuple(
                d for d in artifact.get("dependencies", []) if artifacts.get(d, {}).get("type") == _STACK
            ),
            termination_protection=bool(props.get("terminationProtection")),
        )
        if "bootstrapStackVersionSsmParameter" in props:
            needed = BootstrapRequirement(
                props["bootstrapStackVersionSsmParameter"], int(props.get("requiresBootstrapStackVersion", 0))
            )
            if requirement is None or needed.min_version > requirement.min_version:
                requirement = needed
    return Assembly(directory, _in_deploy_order(stacks), requirement)


def _environment(value: str) -> tuple[str | None, str | None]:
    """``aws://<account>/<region>``; CDK writes ``unknown-account`` / ``unknown-region`` for agnostic."""
    account, _, region = value.removeprefix("aws://").partition("/")
    return (None if account.startswith("unknown") else account), (
        None if region.startswith("unknown") else region
    )


def _in_deploy_order(stacks: Mapping[str, StackArtifact]) -> dict[str, StackArtifact]:
    ordered: dict[str, StackArtifact] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in path:
            raise AssemblyError(f"dependency cycle: {' -> '.join((*path, name))}")
        for dependency in stacks[name].dependencies:
            visit(dependency, (*path, name))
        ordered[name] = stacks[name]

    for name in stacks:
        visit(name, ())
    return ordered


def synth(env: str, context: Mapping[str, str], outdir: Path, *, root: Path = ROOT) -> Assembly:
    """Run ``npx cdk synth`` for ``env`` (plus ``-c`` values) into ``outdir``; offline, no AWS."""
    npx = shutil.which("npx")
    if npx is None:
        raise AssemblyError("npx not found: install Node.js 20+ (it ships npm and npx)")
    argv = [npx, "cdk", "synth", "--quiet", "--no-notices", "-c", f"env={env}", "--output", str(outdir)]
    for key, value in context.items():
        argv += ["-c", f"{key}={value}"]
    if outdir.exists():
        shutil.rmtree(outdir)  # a stack removed from the app must not linger in the assembly
    environment = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run(argv, cwd=root, env=environment, check=False)  # noqa: S603 -- argv, no shell
    if result.returncode != 0:
        raise AssemblyError(f"cdk synth failed (exit {result.returncode}); its output is above")
    return read_assembly(outdir)
