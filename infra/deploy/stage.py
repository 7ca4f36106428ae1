"""A deployed stage: its stack outputs, operator commands, and what ``deploy`` prints for people.

Operator commands run in the ``migrate`` function (functions/migrate/handler.py), invoked
directly: it sits in the VPC with the database and cache access a shell on a laptop lacks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

#: Output keys (infra/api.py, infra/functions.py).
WS_URL, HTTP_URL, OPERATOR_FUNCTION = "WebSocketUrl", "HttpApiUrl", "OperatorFunctionName"
#: The e2e suite's (and any client's) configuration: tests/e2e/conftest.py reads these.
WS_ENV, HTTP_ENV = "CHATFLOW_WS_URL", "CHATFLOW_HTTP_URL"


class StageError(RuntimeError):
    """The deployed stage is not what the tool expects (missing stack or output)."""


@dataclass(frozen=True)
class OperatorAnswer:
    exit_code: int
    output: str
    error: str


def stack_outputs(session: boto3.Session, region: str, stack_name: str) -> dict[str, str]:
    cloudformation = session.client("cloudformation", region_name=region)
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise StageError(f"{stack_name} is not deployed in {region} ({exc})") from exc
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", []) if "OutputValue" in o}


def outputs_from_file(path: Any) -> dict[str, dict[str, str]]:
    """``cdk deploy --outputs-file``: ``{stack name: {output key: value}}``."""
    data: dict[str, dict[str, str]] = json.loads(path.read_text())
    return data


def invoke_operator(client: LambdaClient, function_name: str, command: list[str]) -> OperatorAnswer:
    """Run an operator command in the stage (``["migrate"]``, ``["promote", "alice"]``...)."""
    response = client.invoke(
        FunctionName=function_name, Payload=json.dumps({"command": command}).encode(), LogType="None"
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError") or not isinstance(payload, dict):
        # The function crashed (timeout, out of memory, import error): Lambda's error document.
        detail = payload.get("errorMessage", payload) if isinstance(payload, dict) else payload
        return OperatorAnswer(1, "", f"{function_name} failed: {detail}")
    return OperatorAnswer(int(payload["exitCode"]), str(payload["output"]), str(payload["error"]))


def migrations_summary(answer: OperatorAnswer) -> tuple[bool, str]:
    """(up to date?, one line for people) from the ``migrate`` operator command's answer."""
    if answer.exit_code != 0:
        return False, f"migrations FAILED: {answer.error.strip()}"
    state = json.loads(answer.output)
    applied = state["appliedNow"]
    now = f"applied now: {', '.join(applied)}" if applied else "nothing pending"
    return True, f"migrations: up to date at {state['head']} ({state['migrations']} files; {now})"


def e2e_env_lines(api_outputs: dict[str, str]) -> list[str]:
    """Exactly the lines the e2e suite and clients take: ``CHATFLOW_WS_URL=...``."""
    missing = [key for key in (WS_URL, HTTP_URL) if key not in api_outputs]
    if missing:
        raise StageError(f"the Api stack has no output {', '.join(missing)}")
    return [f"{WS_ENV}={api_outputs[WS_URL]}", f"{HTTP_ENV}={api_outputs[HTTP_URL]}"]


def dns_instructions(api_outputs: dict[str, str]) -> list[str]:
    """With a given certificate the DNS records are the operator's: where each name must point."""
    lines = []
    for ident, url_key in (("WebSocket", WS_URL), ("Http", HTTP_URL)):
        target = api_outputs.get(f"{ident}DomainTarget")
        if target:
            host = api_outputs[url_key].split("://", 1)[1]
            lines.append(f"  {host}  CNAME (or Route 53 alias)  {target}")
    return lines


def first_admin_instructions(env: str, http_url: str) -> str:
    return "\n".join(
        [
            "First administrator (there is no sign-up path to admin rights, by design):",
            "  1. register the account with any client, or:",
            f"     curl -sS -X POST {http_url}/auth/register -H 'content-type: application/json' \\",
            '          -d \'{"handle": "<handle>", "password": "<8+ characters>"}\'',
            "  2. promote it (runs the admin CLI in the stage's migrate function):",
            f'     make admin ENV={env} ARGS="promote <handle>"',
        ]
    )
