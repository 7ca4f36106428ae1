"""``make deploy`` / ``make destroy`` / ``make admin`` (infra/deploy) without an AWS account.

What runs for real: the Node.js and CDK CLI checks, the synthesized assemblies (dev and prod) the
retention plan is derived from, the migrate function's operator commands against this run's
Postgres and Redis. What cannot run here is faked, and each test says so: STS, SSM and
CloudFormation are moto's (control planes only); the Lambda Invoke transport is a stand-in that
calls the real handler in-process; the CDK CLI's deploy/destroy is recorded, not run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.deploy import __main__ as cli
from infra.deploy import checks, stage
from infra.deploy.assembly import BootstrapRequirement, read_assembly
from infra.deploy.plan import retention_plan
from tests.support.lambdas import load_handler

pytestmark = pytest.mark.infra

REGION = "eu-west-1"
MOTO_ACCOUNT = "123456789012"  # the account moto's STS answers for
REQUIREMENT = BootstrapRequirement("/cdk-bootstrap/hnb659fds/version", 6)


@pytest.fixture
def no_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No profile, no config file, no instance metadata: nothing real to fall back on."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def moto_session(no_aws_config: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    """FAKE: moto's STS / SSM / CloudFormation (AWS control planes cannot run here)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def bootstrap_account(session: boto3.Session, version: str | None) -> None:
    """What `cdk bootstrap` leaves behind, as far as the checks look: the stack and its version."""
    session.client("cloudformation").create_stack(
        StackName="CDKToolkit",
        TemplateBody=json.dumps({"Resources": {"Staging": {"Type": "AWS::SQS::Queue"}}}),
    )
    if version is not None:
        session.client("ssm").put_parameter(Name=REQUIREMENT.version_parameter, Value=version, Type="String")


# --- local tools ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "ok", "message"),
    [
        ("v20.20.2", True, "v20.20.2"),
        ("v22.1.0", True, "v22.1.0"),
        ("v18.19.1", False, "needs >= 20"),
        (None, False, "not found on PATH"),
    ],
)
def test_node_version_is_checked_with_a_fix(version: str | None, ok: bool, message: str) -> None:
    check = checks.check_node(version)
    assert check.ok is ok
    assert message in check.detail
    assert ok or "install Node.js 20" in check.render()


def test_node_is_found_on_path_or_reported_missing(tmp_path: Path) -> None:
    assert checks.check_node(checks.node_version()).ok  # this machine's real Node.js
    assert checks.node_version(path=str(tmp_path)) is None  # a PATH without node


def test_the_cdk_cli_must_be_the_version_package_json_pins(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"devDependencies": {"aws-cdk": "2.1148.1"}}))
    missing = checks.check_cdk_cli(tmp_path)
    assert not missing.ok
    assert "not installed" in missing.detail
    assert "npm ci" in missing.fix
    installed = tmp_path / "node_modules" / "aws-cdk" / "package.json"
    installed.parent.mkdir(parents=True)
    installed.write_text(json.dumps({"version": "2.1000.0"}))
    stale = checks.check_cdk_cli(tmp_path)
    assert not stale.ok
    assert "2.1000.0 installed, package.json pins 2.1148.1" in stale.detail
    installed.write_text(json.dumps({"version": "2.1148.1"}))
    assert checks.check_cdk_cli(tmp_path).ok


# --- AWS prerequisites ---------------------------------------------------------------------------------
def test_region_comes_from_cdk_json_then_the_aws_configuration(
    no_aws_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = boto3.Session()
    assert checks.resolve_region("eu-central-1", session)[1] == "eu-central-1"
    none, region = checks.resolve_region("", session)
    assert region is None
    assert "export AWS_REGION" in none.fix
    monkeypatch.setenv("AWS_REGION", "us-west-2")  # what the CDK CLI honours; boto3 alone does not
    assert checks.resolve_region("", boto3.Session())[1] == "us-west-2"


def test_missing_credentials_say_how_to_get_some(no_aws_config: None) -> None:
    # No fake needed: botocore finds no credentials before any request is made.
    check, identity = checks.check_credentials(boto3.Session(), REGION, "")
    assert identity is None
    assert not check.ok
    assert "Unable to locate credentials" in check.detail
    assert "AWS_PROFILE" in check.fix


def test_an_unknown_profile_is_reported(no_aws_config: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    check, session = checks.open_session()
    assert session is None
    assert "no-such-profile" in check.detail


def test_credentials_must_be_for_the_pinned_account(moto_session: boto3.Session) -> None:
    check, identity = checks.check_credentials(moto_session, REGION, "")
    assert check.ok
    assert identity == checks.Identity(MOTO_ACCOUNT, identity.arn if identity else "", REGION)
    wrong, _ = checks.check_credentials(moto_session, REGION, "111122223333")
    assert not wrong.ok
    assert f"account {MOTO_ACCOUNT}" in wrong.detail
    assert "111122223333" in wrong.fix


def test_bootstrap_missing_too_old_or_ready(moto_session: boto3.Session) -> None:
    identity = checks.Identity(MOTO_ACCOUNT, "arn:aws:iam::123456789012:user/ops", REGION)
    absent = checks.check_bootstrap(moto_session, identity, REQUIREMENT, "dev")
    assert not absent.ok
    assert f"aws://{MOTO_ACCOUNT}/{REGION} is not bootstrapped" in absent.detail
    assert absent.fix.startswith("make bootstrap ENV=dev")
    bootstrap_account(moto_session, version="5")
    old = checks.check_bootstrap(moto_session, identity, REQUIREMENT, "dev")
    assert not old.ok
    assert "version 5" in old.detail
    assert "needs >= 6" in old.detail
    moto_session.client("ssm").put_parameter(
        Name=REQUIREMENT.version_parameter, Value="30", Type="String", Overwrite=True
    )
    ready = checks.check_bootstrap(moto_session, identity, REQUIREMENT, "dev")
    assert ready.ok, ready.render()
    assert "version 30" in ready.detail


def test_a_bootstrap_under_another_qualifier_is_named(moto_session: boto3.Session) -> None:
    identity = checks.Identity(MOTO_ACCOUNT, "arn", REGION)
    bootstrap_account(moto_session, version=None)
    check = checks.check_bootstrap(moto_session, identity, REQUIREMENT, "prod")
    assert not check.ok
    assert "another qualifier" in check.detail


def test_deploy_stops_at_the_first_missing_prerequisite_before_synth(
    no_aws_config: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_REGION", REGION)
    # The local tools are checked by the tests above; here they pass so the AWS checks run.
    monkeypatch.setattr(cli, "_tools", lambda: True)

    def no_synth(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("synth must not run when a prerequisite is missing")

    monkeypatch.setattr(cli, "synth", no_synth)
    assert cli.main(["deploy", "--env", "dev", "--check-only"]) == 2
    out = capsys.readouterr().out
    assert "XX  AWS credentials: Unable to locate credentials" in out
    assert "-> export AWS_PROFILE" in out


@pytest.fixture
def prod_cli(moto_session: boto3.Session, monkeypatch: pytest.MonkeyPatch, prod_out: Path) -> None:
    """The CLI against moto's account with the real prod assembly in place of `npx cdk synth`
    (synth itself is covered by the apps of test_gates) and the local tools assumed present
    (checked by the tests above)."""
    monkeypatch.setattr(cli, "_tools", lambda: True)
    monkeypatch.setattr(cli, "synth", lambda *_a, **_k: read_assembly(prod_out))
    monkeypatch.setattr(checks, "open_session", lambda: (checks.Check("AWS", True, ""), moto_session))
    monkeypatch.setenv("AWS_REGION", REGION)


def test_check_only_runs_every_check_against_the_synthesized_requirement(
    moto_session: boto3.Session, prod_cli: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["deploy", "--env", "prod", "--check-only"]) == 2
    assert "make bootstrap ENV=prod" in capsys.readouterr().out
    bootstrap_account(moto_session, version="30")
    assert cli.main(["deploy", "--env", "prod", "--check-only"]) == 0
    assert "All prerequisites met." in capsys.readouterr().out


# --- the assembly and what destroy leaves ----------------------------------------------------------
@pytest.fixture
def dev_out(cdk_app: Any, cdk_out: Path) -> Path:
    """The shared dev app's assembly directory (cdk_app synthesizes into cdk_out)."""
    return cdk_out


def test_the_assembly_gives_deploy_order_environment_and_bootstrap_requirement(dev_out: Path) -> None:
    assembly = read_assembly(dev_out)
    order = assembly.deploy_order
    assert order[0] == "Chatflow-dev-Network"
    for name, stack in assembly.stacks.items():
        assert all(order.index(dep) < order.index(name) for dep in stack.dependencies)
        assert (stack.account, stack.region) == (None, None)  # environment-agnostic
    assert assembly.bootstrap == REQUIREMENT


def test_dev_is_destroyed_completely(dev_out: Path) -> None:
    assembly = read_assembly(dev_out)
    plan = retention_plan(assembly)
    assert plan.delete == list(reversed(assembly.deploy_order))
    assert plan.keep == []
    # Nothing in dev has a Retain/Snapshot policy (CDK's RETAIN default is overridden everywhere).
    assert plan.retained == []
    left = {(b.stack, b.what) for b in plan.left_behind}
    assert (
        "Chatflow-dev-Data",
        "log group /aws/rds/cluster/<cluster>/postgresql, created by RDS for the log export",
    ) in left
    assert any(stack == "Chatflow-dev-Network" and "/aws/lambda/" in what for stack, what in left)
    assert any(stack == "CDKToolkit" and "cdk-hnb659fds-assets-" in what for stack, what in left)


def test_prod_keeps_its_data_and_lists_what_stays(prod_out: Path) -> None:
    assembly = read_assembly(prod_out)
    plan = retention_plan(assembly)
    kept = {k.stack: k.reason for k in plan.keep}
    assert set(kept) == {"Chatflow-prod-Data", "Chatflow-prod-Network"}
    assert "deletion protection" in kept["Chatflow-prod-Data"]
    assert "AWS::RDS::DBCluster" in kept["Chatflow-prod-Data"]
    assert kept["Chatflow-prod-Network"] == "a kept stack depends on it"
    # Dependents are deleted before what they depend on.
    for name in plan.delete:
        for dependency in assembly.stacks[name].dependencies:
            assert dependency in kept or plan.delete.index(name) < plan.delete.index(dependency)
    retained = {(r.stack, r.type) for r in plan.retained}
    assert ("Chatflow-prod-Functions", "AWS::SecretsManager::Secret") in retained
    log_groups = [r for r in plan.retained if r.type == "AWS::Logs::LogGroup"]
    functions_logs = [r for r in log_groups if r.stack == "Chatflow-prod-Functions"]
    from infra import catalog

    assert len(functions_logs) == len(catalog.FUNCTIONS)
    assert {r.stack for r in log_groups} == {"Chatflow-prod-Functions", "Chatflow-prod-Api"}
    text = plan.render()
    assert "Chatflow-prod-Data: deletion protection on" in text
    assert "(AWS::Logs::LogGroup, Retain): the log group and its events stay" in text


def test_the_plan_follows_policies_and_protection_in_any_template(tmp_path: Path) -> None:
    """The rules, on a hand-made assembly: termination protection, Snapshot, Retain, Lambda logs."""
    templates = {
        "A": {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}},
        "B": {
            "Resources": {
                "Db": {"Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Snapshot", "Properties": {}},
                "Key": {"Type": "AWS::KMS::Key", "DeletionPolicy": "Retain"},
                "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "x"}},
            }
        },
        "C": {"Resources": {"T": {"Type": "AWS::SNS::Topic"}}},
    }
    artifacts: dict[str, Any] = {}
    for name, template in templates.items():
        (tmp_path / f"{name}.template.json").write_text(json.dumps(template))
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "environment": "aws://unknown-account/unknown-region",
            "properties": {"templateFile": f"{name}.template.json", "terminationProtection": name == "C"},
            "dependencies": {"A": [], "B": ["A"], "C": ["A"]}[name],
        }
    (tmp_path / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    plan = retention_plan(read_assembly(tmp_path))
    assert [(k.stack, k.reason) for k in plan.keep] == [
        ("A", "a kept stack depends on it"),
        ("C", "termination protection is on"),
    ]
    assert plan.delete == ["B"]
    assert [(r.logical_id, r.policy) for r in plan.retained] == [("Db", "Snapshot"), ("Key", "Retain")]
    assert "final snapshot" in plan.retained[0].consequence
    assert "7-30 day" in plan.retained[1].consequence
    assert [b.logical_id for b in plan.left_behind] == ["Fn"]


def test_destroy_shows_the_plan_and_deletes_only_deployed_stacks(
    moto_session: boto3.Session,
    prod_cli: None,
    monkeypatch: pytest.MonkeyPatch,
    prod_out: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran: list[list[str]] = []

    def recorded_cdk(argv: list[str], region: str) -> int:
        """FAKE: the CDK CLI is recorded instead of deleting CloudFormation stacks."""
        ran.append(argv)
        return 0

    monkeypatch.setattr(cli, "_cdk", recorded_cdk)

    assert cli.main(["destroy", "--env", "prod", "--plan-only"]) == 0
    assert "Stacks kept, with everything in them:" in capsys.readouterr().out
    assert cli.main(["destroy", "--env", "prod", "--yes"]) == 0
    assert "Nothing to delete" in capsys.readouterr().out
    assert ran == []

    for name in ("Chatflow-prod-Events", "Chatflow-prod-Data"):
        moto_session.client("cloudformation").create_stack(
            StackName=name, TemplateBody=json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}})
        )
    assert cli.main(["destroy", "--env", "prod"]) == 1  # no terminal to confirm on, no --yes
    assert "pass --yes" in capsys.readouterr().out
    assert cli.main(["destroy", "--env", "prod", "--yes"]) == 0
    # The deployed Data stack is kept: only Events is deleted.
    assert ran == [["destroy", "--app", str(prod_out), "--force", "Chatflow-prod-Events"]]
    out = capsys.readouterr().out
    assert "Deleted: Chatflow-prod-Events." in out
    assert "Kept: Chatflow-prod-Network, Chatflow-prod-Data." in out


def test_confirmation_needs_the_environment_name(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("builtins.input", lambda _prompt: "prod")
    assert cli.confirmed("prod", "delete", yes=False, stdin=Terminal())
    monkeypatch.setattr("builtins.input", lambda _prompt: "yes")
    assert not cli.confirmed("prod", "delete", yes=False, stdin=Terminal())
    assert cli.confirmed("prod", "delete", yes=True, stdin=io.StringIO())


# --- after the deploy: migrations, URLs, first administrator ---------------------------------------------
class InProcessLambda:
    """FAKE transport: Lambda's Invoke API cannot run here, so this calls the real migrate handler
    in-process (against this run's Postgres and Redis) and answers like Invoke does."""

    def __init__(self, crash: str | None = None) -> None:
        self.crash = crash
        self.calls: list[tuple[str, Any]] = []

    def invoke(self, FunctionName: str, Payload: bytes, LogType: str) -> dict[str, Any]:
        event = json.loads(Payload)
        self.calls.append((FunctionName, event))
        if self.crash:
            body = {"errorMessage": self.crash, "errorType": "Runtime.ExitError"}
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": io.BytesIO(json.dumps(body).encode()),
            }
        answer = load_handler("migrate")(event, None)
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())}


API_OUTPUTS = {
    "WebSocketUrl": "wss://ws.chat.example.com",
    "HttpApiUrl": "https://api.chat.example.com",
    "WebSocketManagedUrl": "wss://abc123.execute-api.eu-west-1.amazonaws.com/v1",
    "WebSocketDomainTarget": "d-abc.execute-api.eu-west-1.amazonaws.com",
    "HttpDomainTarget": "d-def.execute-api.eu-west-1.amazonaws.com",
}


def test_after_deploy_it_checks_migrations_and_prints_the_e2e_lines(
    owner_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from infra.config import from_mapping
    from tests.infra.conftest import cdk_context

    config = from_mapping(cdk_context())
    identity = checks.Identity(MOTO_ACCOUNT, "arn", REGION)
    outputs = {
        "Chatflow-dev-Api": API_OUTPUTS,
        "Chatflow-dev-Functions": {"OperatorFunctionName": "fn-migrate"},
    }
    client = InProcessLambda()
    assert cli.report_deployed(config, identity, outputs, client) == 0  # type: ignore[arg-type]
    assert client.calls == [("fn-migrate", {"command": ["migrate"]})]
    lines = capsys.readouterr().out.splitlines()
    # Exactly the variables tests/e2e/conftest.py reads, one per line, nothing else on them.
    assert "CHATFLOW_WS_URL=wss://ws.chat.example.com" in lines
    assert "CHATFLOW_HTTP_URL=https://api.chat.example.com" in lines
    assert any(line.startswith("migrations: up to date at ") and "nothing pending" in line for line in lines)
    assert (
        "  ws.chat.example.com  CNAME (or Route 53 alias)  d-abc.execute-api.eu-west-1.amazonaws.com" in lines
    )
    assert '     make admin ENV=dev ARGS="promote <handle>"' in lines
    assert any("curl -sS -X POST https://api.chat.example.com/auth/register" in line for line in lines)


def test_a_crashed_operator_function_fails_the_deploy_report(capsys: pytest.CaptureFixture[str]) -> None:
    from infra.config import from_mapping
    from tests.infra.conftest import cdk_context

    config = from_mapping(cdk_context())
    identity = checks.Identity(MOTO_ACCOUNT, "arn", REGION)
    outputs = {"Chatflow-dev-Api": API_OUTPUTS, "Chatflow-dev-Functions": {"OperatorFunctionName": "fn"}}
    client = InProcessLambda(crash="Task timed out after 300.00 seconds")
    assert cli.report_deployed(config, identity, outputs, client) == 1  # type: ignore[arg-type]
    assert "migrations FAILED: fn failed: Task timed out" in capsys.readouterr().out


def test_admin_invokes_the_stage_operator_function(
    chatflow_env: dict[str, str],
    moto_session: boto3.Session,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.support.identity import http_client, register, unique_handle
    from tests.support.lambdas import reset_handlers

    reset_handlers()
    handle = unique_handle("ops")
    register(http_client(), handle)
    capsys.readouterr()  # the http_api handler's own log lines
    monkeypatch.setattr(checks, "open_session", lambda: (checks.Check("AWS", True, ""), moto_session))
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setattr(stage, "stack_outputs", lambda *_a: {"OperatorFunctionName": "fn-migrate"})
    client, real_client = InProcessLambda(), moto_session.client

    def clients(service: str, region_name: str | None = None) -> Any:
        return client if service == "lambda" else real_client(service, region_name=region_name)  # type: ignore[call-overload]

    monkeypatch.setattr(moto_session, "client", clients)
    assert cli.main(["admin", "--env", "dev", "--", "promote", handle]) == 0
    assert json.loads(capsys.readouterr().out)["role"] == "admin"
    assert cli.main(["admin", "--env", "dev", "--", "show", "nobody-at-all"]) == 1
    assert "no user" in capsys.readouterr().err


def test_the_tool_reads_outputs_the_stacks_really_have(template_json: dict[str, Any]) -> None:
    from infra.functions import OPERATOR_FUNCTION_OUTPUT

    assert stage.OPERATOR_FUNCTION == OPERATOR_FUNCTION_OUTPUT
    operator = template_json["Functions"]["Outputs"][stage.OPERATOR_FUNCTION]["Value"]
    assert operator["Ref"].startswith("MigrateFn")
    assert {stage.WS_URL, stage.HTTP_URL} <= set(template_json["Api"]["Outputs"])


def test_e2e_lines_need_both_outputs() -> None:
    with pytest.raises(stage.StageError, match="HttpApiUrl"):
        stage.e2e_env_lines({"WebSocketUrl": "wss://x"})
    assert stage.dns_instructions({"WebSocketUrl": "wss://x", "HttpApiUrl": "https://y"}) == []
