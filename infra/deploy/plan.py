"""What ``make destroy`` removes and what stays, and why -- derived from the synthesized templates.

Nothing here is a hand-kept list; every line comes from the assembly:

- **kept stacks**: a stack with termination protection, or holding a resource with deletion
  protection (prod's Aurora cluster), is not destroyed, and neither is any stack it depends on
  (its network). Prod keeps its data: removing it is a deliberate, manual act.
- **retained resources**: in the stacks that are destroyed, resources whose ``DeletionPolicy`` is
  ``Retain`` / ``RetainExceptOnCreate`` stay; ``Snapshot`` deletes them after a final snapshot,
  which stays. (``UpdateReplacePolicy`` only matters when a resource is replaced, not on delete.)
- **left behind**: things AWS services create outside CloudFormation for resources in the
  templates, which therefore survive the stack: the log group Lambda creates for a function
  without an explicit one, the log groups RDS writes its exports to, the functions of a nested
  serverless application -- and the assets the deploy uploaded to the (shared) bootstrap bucket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from infra.deploy.assembly import Assembly

#: What staying means for a few resource types (anything else gets the generic sentence).
_WHAT_STAYS = {
    "AWS::Logs::LogGroup": "the log group and its events stay (storage is billed) until you delete it",
    "AWS::SecretsManager::Secret": "the secret stays (and is billed) until you delete it",
    "AWS::KMS::Key": "the key stays; deleting it needs a 7-30 day waiting period",
    "AWS::S3::Bucket": "the bucket and its objects stay",
    "AWS::RDS::DBCluster": "the database cluster keeps running (and billing)",
    "AWS::ElastiCache::ReplicationGroup": "the cache keeps running (and billing)",
}
_PROTECTION_KEYS = ("DeletionProtection", "DeletionProtectionEnabled")


@dataclass(frozen=True)
class KeptStack:
    stack: str
    reason: str


@dataclass(frozen=True)
class Retained:
    stack: str
    logical_id: str
    type: str
    policy: str
    consequence: str


@dataclass(frozen=True)
class LeftBehind:
    stack: str
    logical_id: str
    what: str


@dataclass(frozen=True)
class RetentionPlan:
    #: Stacks ``destroy`` deletes, in deletion order (dependents first).
    delete: list[str]
    keep: list[KeptStack]
    retained: list[Retained]
    left_behind: list[LeftBehind]

    def render(self) -> str:
        lines = ["Stacks to delete (in this order):"]
        lines += [f"  - {name}" for name in self.delete] or ["  (none)"]
        if self.keep:
            lines.append("Stacks kept, with everything in them:")
            lines += [f"  - {k.stack}: {k.reason}" for k in self.keep]
        lines.append("Resources that stay after their stack is deleted (DeletionPolicy):")
        lines += [
            f"  - {r.stack} {r.logical_id} ({r.type}, {r.policy}): {r.consequence}" for r in self.retained
        ] or ["  (none)"]
        lines.append("Created by AWS services outside CloudFormation, so not deleted with the stacks:")
        lines += [f"  - {b.stack} {b.logical_id}: {b.what}" for b in self.left_behind] or ["  (none)"]
        return "\n".join(lines)


def retention_plan(assembly: Assembly) -> RetentionPlan:
    stacks = assembly.stacks
    reasons: dict[str, str] = {}
    for name, stack in stacks.items():
        if stack.termination_protection:
            reasons[name] = "termination protection is on"
        protected = [
            f"{logical_id} ({resource['Type']})"
            for logical_id, resource in _resources(stack.template)
            if any(resource.get("Properties", {}).get(key) is True for key in _PROTECTION_KEYS)
        ]
        if protected:
            reasons[name] = f"deletion protection on {', '.join(protected)}"
    # Whatever a kept stack depends on stays too (the data's network).
    pending = list(reasons)
    while pending:
        for dependency in stacks[pending.pop()].dependencies:
            if dependency not in reasons:
                reasons[dependency] = "a kept stack depends on it"
                pending.append(dependency)
    delete = [name for name in reversed(assembly.deploy_order) if name not in reasons]
    retained: list[Retained] = []
    left_behind: list[LeftBehind] = []
    for name in delete:
        for logical_id, resource in _resources(stacks[name].template):
            policy = resource.get("DeletionPolicy", "Delete")
            if policy in ("Retain", "RetainExceptOnCreate"):
                consequence = _WHAT_STAYS.get(resource["Type"], "it stays in the account until you delete it")
                retained.append(Retained(name, logical_id, resource["Type"], policy, consequence))
            elif policy == "Snapshot":
                consequence = (
                    "deleted after a final snapshot; the snapshot stays (billed) until you delete it"
                )
                retained.append(Retained(name, logical_id, resource["Type"], policy, consequence))
            left_behind += [LeftBehind(name, logical_id, what) for what in _created_outside(resource)]
    if assembly.bootstrap is not None:
        qualifier = assembly.bootstrap.version_parameter.split("/")[2]
        left_behind.append(
            LeftBehind(
                "CDKToolkit",
                "assets",
                f"the uploaded assets (layer, function code, templates) in cdk-{qualifier}-assets-<account>-"
                "<region>: the bootstrap bucket is shared by every CDK app there (`cdk gc` prunes it)",
            )
        )
    keep = [KeptStack(name, reasons[name]) for name in assembly.deploy_order if name in reasons]
    return RetentionPlan(delete, keep, retained, left_behind)


def _resources(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return list(template.get("Resources", {}).items())


def _created_outside(resource: dict[str, Any]) -> list[str]:
    kind, props = resource["Type"], resource.get("Properties", {})
    if kind == "AWS::Lambda::Function" and "LogGroup" not in json.dumps(props.get("LoggingConfig", {})):
        return ["log group /aws/lambda/<function name>, created by Lambda on its first run"]
    if kind == "AWS::RDS::DBCluster":
        return [
            f"log group /aws/rds/cluster/<cluster>/{export}, created by RDS for the log export"
            for export in props.get("EnableCloudwatchLogsExports", [])
        ]
    if kind == "AWS::Serverless::Application":
        return ["log groups /aws/lambda/<function name> of the nested application's functions"]
    return []
