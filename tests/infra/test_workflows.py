"""The pipeline cannot ship what CI rejected, and its workflows pass their security rules:
actions pinned to commit SHAs, no persisted credentials, id-token only where a role is assumed,
no expressions expanded inside scripts, no inherited secrets, zizmor (offline) clean."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs in the dev requirements

from tests.infra.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
_ASSUME_ROLE = "aws-actions/configure-aws-credentials"


def _load(path: Path) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(path.read_text())
    return data


def _jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(p.name, name, job) for p in WORKFLOWS for name, job in _load(p)["jobs"].items()]


def test_every_action_is_pinned_to_a_commit_sha_with_its_version() -> None:
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            match = re.search(r"uses:\s*(\S+)(.*)$", line)
            if not match or match.group(1).startswith("./"):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", match.group(1)), (
                f"{path.name}: {line.strip()}"
            )
            assert re.search(r"#\s*v\d+(\.\d+)*", match.group(2)), f"{path.name}: no version comment: {line}"


def test_checkouts_do_not_persist_credentials() -> None:
    for workflow, name, job in _jobs():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{workflow}:{name}"


def test_id_token_only_for_jobs_that_assume_a_role() -> None:
    for path in WORKFLOWS:
        data = _load(path)
        assert data.get("permissions") == {}, f"{path.name}: top-level permissions must be empty"
    for workflow, name, job in _jobs():
        permissions = job.get("permissions", {})
        assumes = any(str(s.get("uses", "")).startswith(_ASSUME_ROLE) for s in job.get("steps", []))
        calls_deploy = str(job.get("uses", "")).endswith("deploy-stage.yml")
        assert (permissions.get("id-token") == "write") == (assumes or calls_deploy), f"{workflow}:{name}"


def test_no_expression_is_expanded_inside_a_script() -> None:
    for workflow, name, job in _jobs():
        for step in job.get("steps", []):
            script = str(step.get("run", ""))
            assert "${{" not in script, f"{workflow}:{name}: pass it through env: instead ({script[:60]})"


def test_secrets_are_never_inherited() -> None:
    for path in WORKFLOWS:
        assert "secrets: inherit" not in path.read_text(), path.name


def test_deploys_are_gated_on_ci_and_prod_only_from_main() -> None:
    deploy = _load(ROOT / ".github" / "workflows" / "deploy.yml")
    jobs = deploy["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs["staging"]["needs"] == "ci"
    assert jobs["prod"]["needs"] == "staging"
    assert jobs["prod"]["if"] == "github.ref == 'refs/heads/main'"
    assert jobs["prod"]["with"]["smoke"] == "read-only"
    ci = _load(ROOT / ".github" / "workflows" / "ci.yml")
    # YAML 1.1 reads the key `on` as True.
    assert "push" not in ci[True], "main's CI runs inside deploy.yml, before the deploys"
    stage = _load(ROOT / ".github" / "workflows" / "deploy-stage.yml")["jobs"]
    # The plan (cdk diff in the job summary) runs before, and outside, the approval.
    assert stage["deploy"]["needs"] == "plan"
    assert stage["plan"]["environment"] == "${{ inputs.plan-environment }}"
    assert any("GITHUB_STEP_SUMMARY" in str(s.get("run", "")) for s in stage["plan"]["steps"])


def test_every_deploy_runs_the_acceptance_smoke_subset() -> None:
    """issue 17: after every deploy (prod included) the read-only smoke subset of the acceptance
    suite runs against the deployed URLs; full stages also run the whole suite."""
    steps = _load(ROOT / ".github" / "workflows" / "deploy-stage.yml")["jobs"]["deploy"]["steps"]
    names = [str(s.get("name", s.get("uses", ""))) for s in steps]
    deployed = next(i for i, s in enumerate(steps) if "cdk deploy" in str(s.get("run", "")))
    smoke = [
        s for s in steps[deployed:] if "tests/acceptance -m smoke" in " ".join(str(s.get("run", "")).split())
    ]
    assert len(smoke) == 1, names
    assert "if" not in smoke[0], "the smoke subset runs on every stage"
    assert set(smoke[0]["env"]) == {"TARGET_WS_URL", "TARGET_HTTP_URL"}, "no admin token: read-only"
    assert "--junitxml" in smoke[0]["run"]
    full = [s for s in steps[deployed:] if "(acceptance and not smoke) or e2e" in str(s.get("run", ""))]
    assert len(full) == 1, names
    assert full[0]["if"] == "inputs.smoke == 'full'"
    deploy = _load(ROOT / ".github" / "workflows" / "deploy.yml")["jobs"]
    assert (deploy["staging"]["with"]["smoke"], deploy["prod"]["with"]["smoke"]) == ("full", "read-only")


def test_zizmor_reports_no_medium_or_high_finding() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "zizmor"),
            "--offline",
            "--min-severity",
            "medium",
            "--no-progress",
            str(ROOT / ".github" / "workflows"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", [p.name for p in WORKFLOWS])
def test_workflows_parse(workflow: str) -> None:
    assert _load(ROOT / ".github" / "workflows" / workflow)["jobs"]
