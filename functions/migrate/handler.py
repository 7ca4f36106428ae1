"""Deploy-time custom resources (plain CloudFormation custom-resource protocol).

``ResourceProperties.Action`` selects the work:

- ``migrate``: applies pending SQL migrations (``chatflow.adapters.postgres.migrate.migrate``)
  through RDS Proxy with an IAM token. CloudFormation sends Update whenever ``MigrationsHash``
  changes, i.e. when a migration file is added. Delete never drops anything.
- ``jwt-keys``: makes sure the signing-key secret holds an ES256 private key -- generated here on
  first deploy, or again when the ``Rotation`` property changes (the previous public key stays in
  the secret and in ``PublicKeys`` so tokens signed before the rotation still verify). Returns
  ``PublicKeys`` (PEM, blank-line separated), which the CDK app puts into the verifiers'
  ``JWT_PUBLIC_KEYS`` so the authorizer never calls AWS at cold start, and ``KeyId``: the ``kid``
  new tokens carry (the key's RFC 7638 thumbprint; informational, nothing is configured with it).

The handler always answers CloudFormation (SUCCESS or FAILED with the reason): a crash without an
answer would leave the stack waiting for an hour.

Invoked directly (no ``RequestType``), it runs an operator command in the deployed environment --
inside the VPC, with this function's database and cache access, so nobody needs a bastion:
``{"command": ["migrate"]}`` applies pending migrations and reports the schema version (what
``make deploy`` checks after a deploy), ``{"command": ["promote", "<handle>"]}`` (also ``demote``,
``show``, ``delete``) runs the admin CLI (``make admin ENV=<env> ARGS="promote alice"``). Invoking
it takes ``lambda:InvokeFunction`` on this function: an operator's permission, not a client's.
"""

from __future__ import annotations

from chatflow.coldstart import pause_gc, resume_gc_after_first_call  # isort: skip

pause_gc()  # before the imports below: init runs without cyclic GC (chatflow.coldstart)

import io
import json
import logging
import urllib.request
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from chatflow.adapters.postgres.iam_auth import iam_dsn
from chatflow.adapters.postgres.migrate import available_migrations, migrate
from chatflow.settings import get_settings

logger = logging.getLogger("chatflow.migrate")
logger.setLevel(logging.INFO)

#: CloudFormation's limit for the response's Data is 4 KB; keep well below.
_MAX_DATA_CHARS = 3000


@resume_gc_after_first_call
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "RequestType" not in event:
        return run_operator_command(event.get("command"))
    request_type = str(event.get("RequestType", ""))
    props: dict[str, Any] = dict(event.get("ResourceProperties") or {})
    old_props: dict[str, Any] = dict(event.get("OldResourceProperties") or {})
    action = str(props.get("Action", ""))
    physical_id = str(event.get("PhysicalResourceId") or f"chatflow-{action or 'bootstrap'}")
    status, reason, data = "SUCCESS", "", {}
    try:
        if request_type in ("Create", "Update"):
            data = run_action(action, props, old_props, request_type)
        elif request_type != "Delete":
            raise ValueError(f"unknown RequestType {request_type!r}")
    except Exception as exc:  # every failure must reach CloudFormation as FAILED
        logger.exception("custom resource %s (%s) failed", action, request_type)
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"[:500]
    response = {
        "Status": status,
        "Reason": reason or f"see CloudWatch log stream {getattr(context, 'log_stream_name', '?')}",
        "PhysicalResourceId": physical_id,
        "StackId": event.get("StackId"),
        "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"),
        "NoEcho": False,
        "Data": data,
    }
    if event.get("ResponseURL"):
        send_response(str(event["ResponseURL"]), response)
    return response


def run_action(
    action: str, props: dict[str, Any], old_props: dict[str, Any], request_type: str
) -> dict[str, str]:
    if action == "migrate":
        settings = get_settings()
        applied = migrate(iam_dsn(settings.database_url, settings))
        logger.info("migrations applied: %s", applied or "none (up to date)")
        return {"Applied": ",".join(applied)[:_MAX_DATA_CHARS]}
    if action == "jwt-keys":
        rotate = request_type == "Update" and props.get("Rotation") != old_props.get("Rotation")
        return ensure_jwt_keys(str(props["SecretArn"]), rotate=rotate)
    raise ValueError(f"unknown Action {action!r}")


def run_operator_command(command: Any) -> dict[str, Any]:
    """Run ``command`` (an argv list); answer ``{"exitCode", "output", "error"}`` like a shell.

    A wrong command is the operator's mistake and gets exit code 2 with the usage, never an
    exception (the caller prints the answer as it is).
    """
    if not (isinstance(command, list) and command and all(isinstance(arg, str) for arg in command)):
        usage = 'expected {"command": ["migrate"]} or {"command": ["promote|demote|show|delete", "<handle>"]}'
        return {"exitCode": 2, "output": "", "error": usage}
    if command == ["migrate"]:
        try:
            settings = get_settings()
            applied = migrate(iam_dsn(settings.database_url, settings))
        except Exception as exc:  # the operator gets the reason; the log gets the traceback
            logger.exception("operator migrate failed")
            return {"exitCode": 1, "output": "", "error": f"{type(exc).__name__}: {exc}"}
        shipped = [m.name for m in available_migrations()]
        state = {"appliedNow": applied, "head": shipped[-1] if shipped else None, "migrations": len(shipped)}
        return {"exitCode": 0, "output": json.dumps(state), "error": ""}
    # The admin CLI as an operator would run it in a shell that reaches the database: its argv,
    # its stdout/stderr and exit code (argparse exits 2 on a bad command). Redirecting is safe
    # here: one invocation per container at a time, and logging does not write to sys.stdout.
    from chatflow.admin_cli import main as admin_cli

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = admin_cli(command)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return {"exitCode": code, "output": out.getvalue(), "error": err.getvalue()}


def send_response(url: str, response: dict[str, Any]) -> None:
    body = json.dumps(response).encode()
    request = urllib.request.Request(  # noqa: S310 -- CloudFormation's pre-signed https URL
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        answer.read()


# --- JWT signing key -------------------------------------------------------------------------
def ensure_jwt_keys(secret_arn: str, *, rotate: bool, client: Any | None = None) -> dict[str, str]:
    """Generate the ES256 key into the secret if it holds none (or ``rotate``); return public data.

    The secret is JSON ``{"privateKey": PEM, "previousPublicKeys": [PEM]}``
    (``chatflow.secrets.jwt_private_key`` reads ``privateKey``).
    """
    from chatflow.auth.keys import generate_es256_pem_pair

    if client is None:
        import boto3

        client = boto3.client("secretsmanager")
    current = parse_key_secret(str(client.get_secret_value(SecretId=secret_arn)["SecretString"]))
    private_pem = current["privateKey"]
    previous: list[str] = list(current["previousPublicKeys"])
    if private_pem is None or rotate:
        if private_pem is not None:
            previous = [public_pem(private_pem)]
        private_pem, _ = generate_es256_pem_pair()
        client.put_secret_value(
            SecretId=secret_arn,
            SecretString=json.dumps({"privateKey": private_pem, "previousPublicKeys": previous}),
        )
        logger.info("generated a new JWT signing key (rotation=%s)", rotate)
    public = public_pem(private_pem)
    return {"PublicKeys": "\n\n".join([public, *previous]), "KeyId": key_id(public)}


def parse_key_secret(raw: str) -> dict[str, Any]:
    """The secret's content; a value that is no key (CDK's random placeholder) means no key yet."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict) and str(data.get("privateKey", "")).startswith("-----BEGIN"):
        return {
            "privateKey": data["privateKey"],
            "previousPublicKeys": list(data.get("previousPublicKeys") or []),
        }
    if raw.startswith("-----BEGIN"):
        return {"privateKey": raw, "previousPublicKeys": []}
    return {"privateKey": None, "previousPublicKeys": []}


def public_pem(private_pem: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
        .strip()
    )


def key_id(public: str) -> str:
    """The ``kid`` tokens signed with this key carry: its RFC 7638 thumbprint, computed by the
    same function the signer and the verifiers use (``chatflow.auth.tokens.public_jwk``)."""
    from chatflow.auth.tokens import load_public_keys

    (kid,) = load_public_keys(public)
    return kid
