"""ONE synthesized CDK app per test session, with cdk.json's context and bundling skipped.

A plain ``cdk.App()`` does not read cdk.json (the CLI injects it), so the context -- feature flags
and environments -- is loaded here; ``aws:cdk:bundling-stacks: []`` skips the pip-built layer.
cdk-nag is NOT attached here (its gate is tests/infra/test_nag.py, a separate app).

Fixtures: ``cdk_app`` (the built stacks), ``templates`` ({"Network": Template, ...} per stack,
short names as in infra/stacks.py), ``template_json`` (the raw dicts), ``cdk_out`` (the assembly
directory with the *.template.json files, for cfn-lint), ``prod_out`` (the same for prod).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]


def cdk_context(**overrides: Any) -> dict[str, Any]:
    """cdk.json's context as the CLI would pass it, with bundling skipped."""
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    context["aws:cdk:bundling-stacks"] = []
    context.update(overrides)
    return context


def synth(outdir: Path, nag: bool = False, **context: Any) -> Any:
    """A separate app with extra context (``env="prod"``, ``**{"chatflow:region": ...}``),
    synthesized into ``outdir``; with ``nag`` the cdk-nag gate runs (synth raises
    ValidationFailed on any unacknowledged finding). Returns infra.build's ChatflowStacks."""
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    import infra

    app = cdk.App(context=cdk_context(**context), outdir=str(outdir))
    built = infra.build(app)
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return built


@pytest.fixture(scope="session")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cdk.out")


@pytest.fixture(scope="session")
def cdk_app(cdk_out: Path) -> Any:
    import aws_cdk as cdk

    import infra

    app = cdk.App(context=cdk_context(), outdir=str(cdk_out))
    built = infra.build(app)
    app.synth()
    return built


@pytest.fixture(scope="session")
def prod_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prod app's assembly directory (manifest.json + templates), synthesized once."""
    outdir = tmp_path_factory.mktemp("prod.out")
    synth(outdir, env="prod")
    return outdir


@pytest.fixture(scope="session")
def templates(cdk_app: Any) -> dict[str, Any]:
    from aws_cdk.assertions import Template

    return {name: Template.from_stack(stack) for name, stack in cdk_app.stacks.items()}


@pytest.fixture(scope="session")
def template_json(templates: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: template.to_json() for name, template in templates.items()}
