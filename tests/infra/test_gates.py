"""Quality gates: cdk-nag AwsSolutions (own apps, nag kept out of the shared fixture), cfn-lint,
the LocalStack community profile, and environment validation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import cdk_context, synth

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_cdk_nag_aws_solutions_has_no_unacknowledged_findings(tmp_path: Path, env: str) -> None:
    # app.synth() raises ValidationFailed (report in validation-report.json) on any finding
    # that infra/nag.py does not acknowledge.
    synth(tmp_path, nag=True, env=env)


def test_cfn_lint_is_clean_on_every_template(cdk_app: Any, cdk_out: Path) -> None:
    templates = sorted(str(p) for p in cdk_out.glob("*.template.json"))
    assert len(templates) == len(cdk_app.stacks)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "-i", "W3005", "--", *templates],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_localstack_community_profile_synthesizes_only_community_services(tmp_path: Path) -> None:
    built = synth(tmp_path, nag=True, profile="localstack-community")
    from aws_cdk.assertions import Template

    (stack,) = built.stacks.values()
    types = {r["Type"] for r in Template.from_stack(stack).to_json()["Resources"].values()}
    paid_or_docker = {
        "AWS::ApiGatewayV2::Api",
        "AWS::RDS::DBCluster",
        "AWS::ElastiCache::ReplicationGroup",
        "AWS::Lambda::Function",
    }
    assert not types & paid_or_docker
    assert {
        "AWS::Events::EventBus",
        "AWS::Events::Rule",
        "AWS::SQS::Queue",
        "AWS::CloudWatch::Alarm",
    } <= types


def test_prod_is_protected_and_highly_available(prod_out: Path) -> None:
    data = json.loads((prod_out / "Chatflow-prod-Data.template.json").read_text())["Resources"]
    (cluster,) = [r for r in data.values() if r["Type"] == "AWS::RDS::DBCluster"]
    assert cluster["Properties"]["DeletionProtection"] is True
    (cache,) = [r for r in data.values() if r["Type"] == "AWS::ElastiCache::ReplicationGroup"]
    assert cache["Properties"]["MultiAZEnabled"] is True
    assert cache["Properties"]["AutomaticFailoverEnabled"] is True


def test_environment_validation_refuses_unsafe_settings() -> None:
    import aws_cdk as cdk

    from infra.config import ConfigError, load

    with pytest.raises(ConfigError, match="dev only"):
        load(cdk.App(context=cdk_context(env="staging", **{"chatflow:cacheReplicas": "0"})).node)
    with pytest.raises(ConfigError, match="deletionProtection"):
        load(cdk.App(context=cdk_context(env="prod", **{"chatflow:deletionProtection": "false"})).node)
    with pytest.raises(ConfigError, match="unknown env"):
        load(cdk.App(context=cdk_context(env="qa")).node)
    assert load(cdk.App(context=cdk_context(env="dev")).node).min_acu == 0.5


def test_application_signals_slos_mirror_every_error_budget(tmp_path: Path) -> None:
    from infra.slos import SLOS, RatioSlo

    built = synth(tmp_path, nag=True, **{"chatflow:applicationSignals": "true"})
    template = tmp_path / "Chatflow-dev-Observability.template.json"
    resources = json.loads(template.read_text())["Resources"]
    native = {
        r["Properties"]["Name"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::ApplicationSignals::ServiceLevelObjective"
    }
    ratio = [s for s in SLOS if isinstance(s, RatioSlo)]
    assert set(native) == {f"chatflow-dev-{s.name}" for s in ratio}
    for slo in ratio:
        props = native[f"chatflow-dev-{slo.name}"]
        assert props["Goal"]["AttainmentGoal"] == slo.objective
        windows = sorted(b["LookBackWindowMinutes"] for b in props["BurnRateConfigurations"])
        assert windows == [5, 30, 60, 360, 4320]  # 1 h/5 min, 6 h/30 min, 3 d/6 h
    assert built.stacks["Observability"].native_slos
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "-i", "W3005", "--", str(template)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_route_that_forgets_its_authorizer_fails_the_nag_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra import catalog

    forgotten = catalog.HttpRoute("GET", "/rooms/{room_id}/secrets", "http_api")  # no authorizer
    monkeypatch.setattr(catalog, "HTTP_ROUTES", (*catalog.HTTP_ROUTES, forgotten))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        synth(tmp_path, nag=True)
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-APIG4" in report
    assert "HttpRouteGETroomsroomidsecrets" in report
