"""``python -m infra.deploy deploy|destroy|bootstrap|admin --env <env>`` (the Makefile's targets).

Exit codes: 0 done, 1 the step failed (its output says why), 2 a prerequisite is missing (the
checklist says what to do).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import boto3
from botocore.exceptions import ClientError

from infra import config as config_module
from infra.config import ENVIRONMENTS, ConfigError, EnvConfig
from infra.deploy import checks as checks_module
from infra.deploy import stage as stage_module
from infra.deploy.assembly import ROOT, Assembly, AssemblyError, synth
from infra.deploy.checks import Check, Identity
from infra.deploy.plan import RetentionPlan, retention_plan

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _config(args.env, args.context)
    except ConfigError as exc:
        print(f"cdk.json / -c: {exc}", file=sys.stderr)
        return 2
    opened, session = checks_module.open_session()
    if session is None:
        print(opened.render(), file=sys.stderr)
        return 2
    try:
        code: int = args.run(args, config, session)
    except (AssemblyError, stage_module.StageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--env", required=True, choices=ENVIRONMENTS)
        cmd.add_argument(
            "-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="CDK context, as cdk -c"
        )
        return cmd

    deploy = command("deploy", "check prerequisites, deploy every stack, check migrations, print the URLs")
    deploy.add_argument("--check-only", action="store_true", help="stop after the prerequisite checks")
    deploy.add_argument("--require-approval", choices=("never", "any-change", "broadening"))
    deploy.set_defaults(run=cmd_deploy)
    destroy = command("destroy", "print what is removed and what stays, then remove it")
    destroy.add_argument("--plan-only", action="store_true", help="print the plan (offline) and stop")
    destroy.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    destroy.set_defaults(run=cmd_destroy)
    bootstrap = command("bootstrap", "bootstrap the account and region once (npx cdk bootstrap)")
    bootstrap.add_argument("--trust", action="append", default=[], metavar="ACCOUNT")
    bootstrap.add_argument("--execution-policy", action="append", default=[], metavar="POLICY_ARN")
    bootstrap.set_defaults(run=cmd_bootstrap)
    admin = command("admin", "run the admin CLI in the stage: promote|demote|show|delete <handle>")
    admin.add_argument("args", nargs=argparse.REMAINDER)
    admin.set_defaults(run=cmd_admin)
    return parser


def _config(env: str, context: list[str]) -> EnvConfig:
    values = json.loads((ROOT / "cdk.json").read_text())["context"]
    values.update(_pairs(context))
    values["env"] = env
    return config_module.from_mapping(values)


def _pairs(context: list[str]) -> dict[str, str]:
    pairs = {}
    for item in context:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"-c {item!r}: expected KEY=VALUE")
        pairs[key] = value
    return pairs


def _assembly_dir(env: str) -> Path:
    return ROOT / "cdk.out" / f"deploy-{env}"


# --- commands ---------------------------------------------------------------------------------------
def cmd_deploy(args: argparse.Namespace, config: EnvConfig, session: boto3.Session) -> int:
    print(f"Deploying {config.prefix}: prerequisites")
    if not _tools():
        return 2
    identity = _aws(config, session)
    if identity is None:
        return 2
    assembly = synth(config.env, _pairs(args.context), _assembly_dir(config.env))
    if assembly.bootstrap is not None:
        bootstrap = checks_module.check_bootstrap(session, identity, assembly.bootstrap, config.env)
        print(bootstrap.render())
        if not bootstrap.ok:
            return 2
    if args.check_only:
        print("All prerequisites met.")
        return 0
    outputs_file = assembly.directory / "outputs.json"
    argv = ["deploy", "--app", str(assembly.directory), "--all", "--outputs-file", str(outputs_file)]
    if args.require_approval:
        argv += ["--require-approval", args.require_approval]
    if _cdk(argv, identity.region) != 0:
        print(
            "cdk deploy failed: the CloudFormation events above say which resource and why.", file=sys.stderr
        )
        return 1
    outputs = stage_module.outputs_from_file(outputs_file)
    return report_deployed(config, identity, outputs, session.client("lambda", region_name=identity.region))


def report_deployed(
    config: EnvConfig, identity: Identity, outputs: dict[str, dict[str, str]], lambda_client: LambdaClient
) -> int:
    """After a deploy: the migrations' state (checked in the database), the URLs, what to do next."""
    api = outputs.get(f"{config.prefix}-Api", {})
    functions = outputs.get(f"{config.prefix}-Functions", {})
    if stage_module.OPERATOR_FUNCTION not in functions:
        raise stage_module.StageError(
            f"{config.prefix}-Functions has no {stage_module.OPERATOR_FUNCTION} output"
        )
    answer = stage_module.invoke_operator(
        lambda_client, functions[stage_module.OPERATOR_FUNCTION], ["migrate"]
    )
    migrated, summary = stage_module.migrations_summary(answer)
    print(f"\n{config.prefix} is deployed in account {identity.account}, {identity.region}.")
    print(summary)
    print("\nFor clients and the e2e suite (tests/e2e):")
    for line in stage_module.e2e_env_lines(api):
        print(line)
    dns = stage_module.dns_instructions(api)
    if dns:
        print("\nDNS records to create (the certificate was given, the zone is not managed here):")
        print("\n".join(dns))
    print()
    print(stage_module.first_admin_instructions(config.env, api[stage_module.HTTP_URL]))
    return 0 if migrated else 1


def cmd_destroy(args: argparse.Namespace, config: EnvConfig, session: boto3.Session) -> int:
    if not _tools():
        return 2
    assembly = synth(config.env, _pairs(args.context), _assembly_dir(config.env))
    plan = retention_plan(assembly)
    print(f"Destroying {config.prefix}: the plan, from the synthesized templates")
    print(plan.render())
    if args.plan_only:
        return 0
    identity = _aws(config, session)
    if identity is None:
        return 2
    deployed = [name for name in plan.delete if _deployed(session, identity.region, name)]
    if not deployed:
        print(f"Nothing to delete: none of those stacks exists in {identity.account}/{identity.region}.")
        return 0
    where = f"account {identity.account}, {identity.region}"
    if not confirmed(config.env, f"delete {len(deployed)} stacks in {where}", args.yes, sys.stdin):
        print("Not confirmed: nothing deleted.")
        return 1
    if _cdk(["destroy", "--app", str(assembly.directory), "--force", *deployed], identity.region) != 0:
        print(
            "cdk destroy failed: the CloudFormation events above say which resource and why.", file=sys.stderr
        )
        return 1
    print(after_destroy(plan, assembly, deployed))
    return 0


def after_destroy(plan: RetentionPlan, assembly: Assembly, deleted: list[str]) -> str:
    lines = [f"\nDeleted: {', '.join(deleted)}."]
    if plan.retained or plan.left_behind:
        lines.append(
            "Still in the account, as planned above: the retained resources and service-created log groups."
        )
    if plan.keep:
        kept = " ".join(k.stack for k in plan.keep)
        lines += [
            f"Kept: {', '.join(k.stack for k in plan.keep)}. Removing them is a deliberate act:",
            "  turn deletion protection off on the protected resources (console or CLI), then",
            f"  npx cdk destroy --app {assembly.directory} {kept}",
        ]
    return "\n".join(lines)


def cmd_bootstrap(args: argparse.Namespace, config: EnvConfig, session: boto3.Session) -> int:
    if not _tools():
        return 2
    identity = _aws(config, session)
    if identity is None:
        return 2
    argv = ["bootstrap", f"aws://{identity.account}/{identity.region}"]
    for account in args.trust:
        argv += ["--trust", account, "--trust-for-lookup", account]
    for policy in args.execution_policy:
        argv += ["--cloudformation-execution-policies", policy]
    return 0 if _cdk(argv, identity.region) == 0 else 1


def cmd_admin(args: argparse.Namespace, config: EnvConfig, session: boto3.Session) -> int:
    identity = _aws(config, session, quiet=True)
    if identity is None:
        return 2
    outputs = stage_module.stack_outputs(session, identity.region, f"{config.prefix}-Functions")
    function_name = outputs.get(stage_module.OPERATOR_FUNCTION)
    if function_name is None:
        raise stage_module.StageError(
            f"{config.prefix}-Functions has no {stage_module.OPERATOR_FUNCTION} output "
            f"(deployed before it existed): make deploy ENV={config.env}"
        )
    command = [a for a in args.args if a != "--"]
    answer = stage_module.invoke_operator(
        session.client("lambda", region_name=identity.region), function_name, command
    )
    print(answer.output, end="")
    print(answer.error, end="", file=sys.stderr)
    return answer.exit_code


# --- steps --------------------------------------------------------------------------------------------
def _tools() -> bool:
    node = checks_module.check_node(checks_module.node_version())
    results = [node]
    if node.ok:
        cli = checks_module.check_cdk_cli()
        if not cli.ok and shutil.which("npm"):
            print("  .. installing the pinned CDK CLI (npm ci)")
            npm_ci = [shutil.which("npm") or "npm", "ci", "--no-audit", "--no-fund"]
            subprocess.run(npm_ci, cwd=ROOT, check=False)  # noqa: S603 -- fixed argv, no shell
            cli = checks_module.check_cdk_cli()
        results.append(cli)
    return _show(results)


def _aws(config: EnvConfig, session: boto3.Session, *, quiet: bool = False) -> Identity | None:
    region_check, region = checks_module.resolve_region(config.region, session)
    results: list[Check] = [region_check]
    identity = None
    if region is not None:
        credentials, identity = checks_module.check_credentials(session, region, config.account)
        results.append(credentials)
    ok = _show(results, out=sys.stderr if quiet else sys.stdout, only_failures=quiet)
    return identity if ok else None


def _show(results: list[Check], out: TextIO = sys.stdout, *, only_failures: bool = False) -> bool:
    for check in results:
        if not (only_failures and check.ok):
            print(check.render(), file=out)
    return all(check.ok for check in results)


def _deployed(session: boto3.Session, region: str, stack_name: str) -> bool:
    try:
        session.client("cloudformation", region_name=region).describe_stacks(StackName=stack_name)
    except ClientError as exc:
        if "does not exist" in str(exc):
            return False
        raise
    return True


def confirmed(env: str, action: str, yes: bool, stdin: TextIO) -> bool:
    if yes:
        return True
    if not stdin.isatty():
        print(
            f"Refusing to {action} without a terminal to confirm: "
            f"pass --yes (make destroy ENV={env} ARGS=--yes)."
        )
        return False
    print(f"This will {action}.")
    return input(f"Type the environment name ({env}) to go on: ").strip() == env


def _cdk(argv: list[str], region: str) -> int:
    npx = shutil.which("npx") or "npx"
    # Environment-agnostic stacks go to the region resolved above, whatever the profile says.
    env = {
        **os.environ,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    return subprocess.run([npx, "cdk", *argv, "--no-notices"], cwd=ROOT, env=env, check=False).returncode  # noqa: S603


if __name__ == "__main__":
    sys.exit(main())
