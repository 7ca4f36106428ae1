"""Least privilege in the data tier (issue 11.2): the runtime database user through RDS Proxy
end-to-end IAM auth, no KMS wildcard on function roles, final snapshots outside dev."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from chatflow.adapters.postgres.migrate import RUNTIME_ROLE
from infra.data import DB_OWNER, DB_RUNTIME_USER
from tests.infra.conftest import cdk_context

pytestmark = pytest.mark.infra

Json = dict[str, Any]


def _resources(template: Mapping[str, Any], kind: str) -> dict[str, Json]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_the_runtime_user_is_the_role_the_migration_creates() -> None:
    assert DB_RUNTIME_USER == RUNTIME_ROLE
    assert DB_OWNER != DB_RUNTIME_USER


def test_proxy_signs_in_end_to_end_with_iam_and_may_connect_only_as_the_runtime_user(
    template_json: dict[str, Json],
) -> None:
    data = template_json["Data"]
    (proxy,) = _resources(data, "AWS::RDS::DBProxy").values()
    props = proxy["Properties"]
    assert props["DefaultAuthScheme"] == "IAM_AUTH"
    assert props["RequireTLS"] is True
    # One secret: the owner's (for migrate); clients must use IAM for it as well.
    (auth,) = props["Auth"]
    assert auth["IAMAuth"] == "REQUIRED"
    role_id = props["RoleArn"]["Fn::GetAtt"][0]
    policies = [
        p
        for p in _resources(data, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    connect = [s for s in statements if s["Action"] == "rds-db:connect"]
    assert len(connect) == 1
    resource = json.dumps(connect[0]["Resource"])
    assert f'/{DB_RUNTIME_USER}"' in resource
    assert "DbClusterResourceId" in resource or "ClusterResourceId" in resource


def test_no_function_role_has_kms_on_every_key(template_json: dict[str, Json]) -> None:
    for name, template in template_json.items():
        for key, policy in _resources(template, "AWS::IAM::Policy").items():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                if any(a.startswith("kms:") for a in actions):
                    assert ":key/*" not in json.dumps(statement["Resource"]), f"{name}/{key}"


def test_notifications_may_only_publish_to_its_topic(template_json: dict[str, Json]) -> None:
    functions = template_json["Functions"]
    policies = {
        k: v
        for k, v in _resources(functions, "AWS::IAM::Policy").items()
        if k.startswith("NotificationsFnRole")
    }
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    sns = [s for s in statements if "sns:Publish" in json.dumps(s["Action"])]
    assert len(sns) == 1
    assert sns[0]["Action"] == "sns:Publish"
    assert not any("kms:" in json.dumps(s["Action"]) for s in statements)


@pytest.mark.parametrize(
    ("env", "policy"), [("dev", "Delete"), ("staging", "Snapshot"), ("prod", "Snapshot")]
)
def test_aurora_takes_a_final_snapshot_outside_dev(tmp_path: Path, env: str, policy: str) -> None:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    import infra

    app = cdk.App(context=cdk_context(env=env), outdir=str(tmp_path))
    data = Template.from_stack(infra.build(app).stacks["Data"]).to_json()
    (cluster,) = _resources(data, "AWS::RDS::DBCluster").values()
    assert cluster["DeletionPolicy"] == policy
