"""Prerequisites of a deploy, each a :class:`Check` with what was found and how to fix it.

Every check that talks to AWS takes a boto3 session, so tests run them against moto (a fake of
the STS / SSM / CloudFormation control planes, which cannot run here) and real deploys against
the account.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from infra.deploy.assembly import ROOT, BootstrapRequirement

MIN_NODE_MAJOR = 20
TOOLKIT_STACK = "CDKToolkit"
#: CloudFormation states in which the bootstrap stack's resources are usable.
_USABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    #: What was found (shown either way).
    detail: str
    #: What to do about it (shown when not ok).
    fix: str = ""

    def render(self) -> str:
        line = f"  {'ok ' if self.ok else 'XX '} {self.name}: {self.detail}"
        return line if self.ok or not self.fix else f"{line}\n       -> {self.fix}"


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str
    region: str


# --- local tools -------------------------------------------------------------------------------
def node_version(path: str | None = None) -> str | None:
    """``node --version`` (e.g. ``v20.20.2``), or None when Node.js is not on ``path``/PATH."""
    node = shutil.which("node", path=path)
    if node is None:
        return None
    result = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    return result.stdout.strip() or None


def check_node(version: str | None) -> Check:
    fix = f"install Node.js {MIN_NODE_MAJOR} or newer (https://nodejs.org, nvm, or your package manager)"
    if version is None:
        return Check("Node.js", False, "not found on PATH", fix)
    match = re.match(r"v?(\d+)\.", version)
    if match is None or int(match.group(1)) < MIN_NODE_MAJOR:
        return Check("Node.js", False, f"{version} (the CDK CLI needs >= {MIN_NODE_MAJOR})", fix)
    return Check("Node.js", True, version)


def check_cdk_cli(root: Path = ROOT) -> Check:
    """The ``aws-cdk`` CLI installed in node_modules is the version package.json pins."""
    wanted = json.loads((root / "package.json").read_text())["devDependencies"]["aws-cdk"]
    installed_file = root / "node_modules" / "aws-cdk" / "package.json"
    fix = "npm ci  (installs the CLI version package.json pins)"
    if not installed_file.is_file():
        return Check("CDK CLI", False, f"aws-cdk {wanted} is not installed in node_modules", fix)
    installed = json.loads(installed_file.read_text())["version"]
    if installed != wanted:
        return Check("CDK CLI", False, f"aws-cdk {installed} installed, package.json pins {wanted}", fix)
    return Check("CDK CLI", True, f"aws-cdk {installed} (package.json)")


# --- AWS -------------------------------------------------------------------------------------------
def open_session() -> tuple[Check, boto3.Session | None]:
    """The AWS configuration as boto3 reads it (AWS_PROFILE, ~/.aws/config, environment)."""
    try:
        session = boto3.Session()
    except BotoCoreError as exc:  # AWS_PROFILE names a profile that does not exist
        return Check(
            "AWS configuration", False, str(exc), "aws configure list-profiles; export AWS_PROFILE=<one>"
        ), None
    return Check("AWS configuration", True, f"profile {session.profile_name}"), session


def resolve_region(pinned: str, session: boto3.Session) -> tuple[Check, str | None]:
    """The region to deploy to: pinned in cdk.json, else the AWS configuration's.

    ``AWS_REGION`` counts too: the CDK CLI (JavaScript SDK) honours it, boto3 only reads
    ``AWS_DEFAULT_REGION`` and the profile.
    """
    if pinned:
        return Check("Region", True, f"{pinned} (cdk.json)"), pinned
    configured = os.environ.get("AWS_REGION") or session.region_name
    if configured:
        return Check("Region", True, f"{configured} (your AWS configuration)"), configured
    return Check(
        "Region",
        False,
        "none: cdk.json does not pin one and your AWS configuration names none",
        "export AWS_REGION=<region>, or set region (and account) for this environment in cdk.json",
    ), None


def check_credentials(
    session: boto3.Session, region: str, pinned_account: str
) -> tuple[Check, Identity | None]:
    """Who the credentials are (STS GetCallerIdentity), and that it is the pinned account."""
    try:
        who = session.client("sts", region_name=region).get_caller_identity()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        return Check(
            "AWS credentials",
            False,
            f"rejected by AWS ({code}: {exc.response.get('Error', {}).get('Message', '')})",
            "your session has probably expired: aws sso login --profile <profile> (or renew your keys)",
        ), None
    except BotoCoreError as exc:  # no credentials at all, unknown profile, expired SSO cache...
        return Check(
            "AWS credentials",
            False,
            str(exc),
            "export AWS_PROFILE=<profile> (after aws sso login --profile <profile>), "
            "or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN",
        ), None
    identity = Identity(account=who["Account"], arn=who["Arn"], region=region)
    if pinned_account and identity.account != pinned_account:
        return Check(
            "AWS credentials",
            False,
            f"{identity.arn} is in account {identity.account}; cdk.json pins this environment "
            f"to {pinned_account}",
            f"use credentials for account {pinned_account} (export AWS_PROFILE=<its profile>)",
        ), identity
    return Check("AWS credentials", True, f"{identity.arn} (account {identity.account})"), identity


def check_bootstrap(
    session: boto3.Session,
    identity: Identity,
    requirement: BootstrapRequirement,
    env: str,
    toolkit_stack: str = TOOLKIT_STACK,
) -> Check:
    """The CDK bootstrap stack exists, is usable, and is at least the version the stacks need."""
    where = f"aws://{identity.account}/{identity.region}"
    fix = f"make bootstrap ENV={env}   (once per account and region: npx cdk bootstrap {where})"
    try:
        stacks = session.client("cloudformation", region_name=identity.region).describe_stacks(
            StackName=toolkit_stack
        )
        status = stacks["Stacks"][0]["StackStatus"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return Check(
                "CDK bootstrap", False, f"{where} is not bootstrapped (no {toolkit_stack} stack)", fix
            )
        raise
    if status not in _USABLE:
        return Check(
            "CDK bootstrap",
            False,
            f"the {toolkit_stack} stack in {where} is {status}",
            "wait for it to finish, or fix/delete it in the CloudFormation console and bootstrap again"
            if status.endswith("IN_PROGRESS")
            else f"delete the {toolkit_stack} stack in the CloudFormation console, then {fix}",
        )
    try:
        parameter = session.client("ssm", region_name=identity.region).get_parameter(
            Name=requirement.version_parameter
        )
        version = int(parameter["Parameter"]["Value"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ParameterNotFound":
            raise
        return Check(
            "CDK bootstrap",
            False,
            f"{toolkit_stack} exists but {requirement.version_parameter} does not "
            "(bootstrapped with another qualifier, or a legacy bootstrap)",
            fix,
        )
    if version < requirement.min_version:
        return Check(
            "CDK bootstrap",
            False,
            f"version {version} in {where}; this app needs >= {requirement.min_version}",
            f"make bootstrap ENV={env}   (upgrades the bootstrap stack in place)",
        )
    return Check("CDK bootstrap", True, f"{toolkit_stack} version {version} in {where}")
