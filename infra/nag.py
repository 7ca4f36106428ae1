"""Every cdk-nag (AwsSolutions) acknowledgement, each with its reason, in ONE place.

cdk-nag 3 uses CDK's native ``Validations.of(construct).acknowledge(...)``; each finding is
acknowledged individually (``RuleId[Finding]``), on the narrowest construct that carries it.
The gate is tests/infra/test_nag.py: a new finding fails the test until it is fixed or argued here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct

from infra import catalog
from infra.api import route_id
from infra.catalog import Need
from infra.common import pascal
from infra.config import EnvConfig

#: HTTP routes that are public by design (no authorizer in the catalog).
PUBLIC_HTTP_ROUTES = frozenset(
    {
        "GET /health/live",
        "GET /health/ready",
        "GET /openapi.json",
        "GET /.well-known/jwks.json",
        "POST /auth/register",
        "POST /auth/login",
        "POST /auth/refresh",
        "POST /auth/logout",
    }
)


def _ack(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def _flatten(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag prints it in a finding id."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    if isinstance(value, dict) and set(value) == {"Fn::ImportValue"}:
        return str(value["Fn::ImportValue"])
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        sep, parts = value["Fn::Join"]
        return str(sep).join(_flatten(p) for p in parts)
    return json.dumps(value, separators=(",", ":"))


def apply_suppressions(config: EnvConfig, by_name: Mapping[str, Stack]) -> None:
    """Acknowledge the findings of the app's stacks (by name, as infra.stacks builds them)."""
    if "LocalStack" in by_name:
        _localstack(by_name["LocalStack"])
        return

    # --- Data ----------------------------------------------------------------------------------
    data: Any = by_name["Data"]
    if not config.deletion_protection:
        _ack(
            data.cluster,
            "AwsSolutions-RDS10",
            f"{config.env} may be deleted: "
            + (
                "the cluster takes a final snapshot on delete (RemovalPolicy.SNAPSHOT)"
                if config.final_snapshot
                else "dev is disposable (no final snapshot)"
            )
            + "; prod enforces deletion protection (infra/config.py refuses prod without it)",
        )
    if config.cache_replicas == 0:
        _ack(
            data.cache,
            "AwsSolutions-AEC4",
            "dev runs a single Valkey node to save cost; staging/prod must have replicas + multi-AZ failover "
            "(infra/config.py refuses 0 replicas outside dev)",
        )
    _ack(
        data.cache_secret,
        "AwsSolutions-SMG4",
        "ElastiCache AUTH token rotation needs a coordinated ROTATE/SET modification of the replication "
        "group; done as a runbook step (docs/infrastructure.md), not by a Secrets Manager rotation Lambda",
    )
    for child in data.node.find_all():
        if child.node.id.startswith("LogRetention"):
            # CDK's LogRetention provider (Aurora log export retention) ships its own role.
            _ack(
                child,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "CDK's LogRetention custom resource (Aurora log retention); writes only its own logs",
            )
            _ack(
                child,
                "AwsSolutions-IAM5[Resource::*]",
                "CDK's LogRetention custom resource must set retention on log groups created by RDS",
            )

    # --- Api -----------------------------------------------------------------------------------
    api: Any = by_name["Api"]
    logs_role = api.node.try_find_child("ApiGatewayLogsRole")
    if logs_role is not None:
        _ack(
            logs_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level API Gateway logging role: AWS's own policy for exactly this purpose",
        )
    routes: Any = by_name["ApiRoutes"]
    for route in catalog.WS_ROUTES:
        if route.authorizer is None:
            _ack(
                routes.node.find_child(f"WsRoute{route_id(route.route_key)}"),
                "AwsSolutions-APIG4",
                "WebSocket APIs authorize only on $connect (Lambda REQUEST authorizer); every later frame "
                "rides that authorized connection and handlers use the authorizer context",
            )
    for http_route in catalog.HTTP_ROUTES:
        # Only the routes listed here may be public: a new route that forgets its authorizer
        # fails the nag gate (AwsSolutions-APIG4) instead of being waved through.
        if http_route.authorizer is None and http_route.route_key in PUBLIC_HTTP_ROUTES:
            _ack(
                routes.node.find_child(f"HttpRoute{route_id(http_route.route_key)}"),
                "AwsSolutions-APIG4",
                "Public by design (health checks, OpenAPI, JWKS, register/login/refresh/logout): the "
                "handler validates input and credentials itself",
            )

    for child in routes.node.children:
        # AwsCustomResource's provider (infra/api.py: per-route throttles via UpdateStage).
        if child.node.id.startswith("AWS679f53fac002430cb0da5b7982bd2287"):
            _ack(
                child,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "CDK's AwsCustomResource provider (per-route throttles, UpdateStage at deploy time); "
                "writes only its own logs",
            )
            _ack(
                child,
                "AwsSolutions-L1",
                "CDK's AwsCustomResource provider: its Node.js runtime is chosen by aws-cdk-lib and "
                "moves with CDK upgrades; it runs only at deploy time",
            )

    # --- Functions -----------------------------------------------------------------------------
    functions: Any = by_name["Functions"]
    for fn in catalog.FUNCTIONS:
        ident = f"{pascal(fn.name)}Fn"
        policy = functions.node.find_child(f"{ident}Role").node.find_child("DefaultPolicy")
        _ack(
            functions.node.find_child(ident),
            "AwsSolutions-L1",
            "Python 3.13: the newest runtime this layer's wheels and SnapStart are verified on; "
            "moving to 3.14 is one constant (infra/functions.py RUNTIME) after that check",
        )
        _ack(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords and Lambda's VPC ENI actions do not support "
            "resource-level permissions",
        )
        if Need.MANAGE_CONNECTIONS in fn.needs:
            for arn in _connections_arns(functions):
                _ack(
                    policy,
                    f"AwsSolutions-IAM5[Resource::{arn}]",
                    "@connections/{id}: connection ids are created at runtime; the ARN is pinned to this "
                    "WebSocket API, its stage and the POST/GET/DELETE methods",
                )
    _ack(
        functions.jwt_secret,
        "AwsSolutions-SMG4",
        "An ES256 key pair cannot be rotated by a password-rotation Lambda: rotation is a deploy with "
        "-c chatflow:jwtKeyRotation=<n> (the custom resource keeps the previous public key valid)",
    )
    dlq_reason = (
        "This queue IS a dead-letter queue (EventBridge target DLQ or Lambda on-failure destination); "
        "a DLQ of a DLQ would only hide failures -- its depth alarms instead (SLO dlq-depth)"
    )
    for key, queue in functions.dead_letter_queues.items():
        if key.startswith("async-"):
            _ack(queue, "AwsSolutions-SQS3", dlq_reason)
    events: Any = by_name["Events"]
    for queue in events.dead_letter_queues.values():
        _ack(queue, "AwsSolutions-SQS3", dlq_reason)


def _connections_arns(functions: Stack) -> list[str]:
    from infra.functions import connections_arns

    ws = functions.ws  # type: ignore[attr-defined]
    return [_flatten(functions.resolve(arn)) for arn in connections_arns(functions, ws)]


def _localstack(stack: Any) -> None:
    for queue in stack.dead_letter_queues.values():
        if queue.dead_letter_queue is None:
            _ack(
                queue,
                "AwsSolutions-SQS3",
                "This queue IS a dead-letter queue; its depth alarms instead (SLO dlq-depth)",
            )
    _ack(stack.jwt_secret, "AwsSolutions-SMG4", "LocalStack test stack: the key is regenerated per deploy")
    for inbox in [*stack.inboxes.values(), stack.alarm_inbox]:
        _ack(inbox, "AwsSolutions-SQS3", "LocalStack inspection inbox: tests read and delete its messages")
