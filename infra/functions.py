"""Functions: every catalog Function, the shared layer, their IAM, queues and deploy-time resources.

Everything is derived from ``infra/catalog.py``; this module never imports handler code.

- Runtime: Python 3.13 on arm64 (Graviton: ~20% cheaper per GB-s), the shared layer built by pip
  without Docker (infra/layer.py), X-Ray active tracing, one log group per function with the
  environment's retention, Powertools settings in the environment.
- IAM: one role per function with inline statements derived from the function's ``needs`` --
  nothing else (no AWS managed policies). ``execute-api:ManageConnections`` only on the WebSocket
  API's POST/GET/DELETE @connections ARNs; ``events:PutEvents`` only on the bus; ``rds-db:connect``
  only as the proxy user; a secret is readable only by the functions whose needs name it.
- VPC: only functions that need Postgres or Redis run in the VPC (private subnets + the data
  stack's client security group); the authorizer and ws_default stay outside for fast cold starts.
- SnapStart (catalog ``snapstart=True``): published versions + a ``live`` alias that the APIs
  invoke; ``chatflow.snapstart`` closes pools before the snapshot so restore reconnects.
- Async targets (event rules, schedules) get Lambda's own async retry (the catalog's
  ``AsyncInvoke``) + an on-failure SQS queue named by ``catalog.async_failure_queue_name``, on top
  of EventBridge's target retry policy and DLQ (infra/events.py).
- Deploy time: the ``migrate`` function is the handler of two custom resources -- the ES256 JWT
  signing key (generated into Secrets Manager on first deploy; the public key comes back as an
  attribute and feeds ``JWT_PUBLIC_KEYS`` of the verifiers) and the SQL migrations (re-run when a
  migration file changes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from aws_cdk import (
    Acknowledgment,
    Aws,
    CfnOutput,
    CustomResource,
    Duration,
    Fn,
    RemovalPolicy,
    Stack,
    Validations,
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import catalog
from infra.catalog import Need
from infra.common import encrypted_queue as _queue
from infra.common import pascal as _pascal
from infra.common import retention, sns_managed_key, trigger_queue
from infra.config import EnvConfig
from infra.data import CACHE_PORT, DB_NAME, DB_OWNER, DB_PORT, DB_RUNTIME_USER, DataStack
from infra.layer import PACKAGE_DIR, shared_layer

RUNTIME = lambda_.Runtime.PYTHON_3_13
MIGRATIONS_DIR = PACKAGE_DIR / "chatflow" / "adapters" / "postgres" / "migrations"
#: POWERTOOLS_SERVICE_NAME of every function: the ``service`` dimension of its EMF metrics.
SERVICE_NAME = "chatflow"
#: The function that serves the deploy-time custom resources (and operator commands).
BOOTSTRAP_FUNCTION = "migrate"
#: The Functions stack output naming it.
OPERATOR_FUNCTION_OUTPUT = "OperatorFunctionName"
#: Functions event sources invoke asynchronously (EventBridge rules and schedules): those that
#: declare an ``AsyncInvoke`` (catalog_problems() checks every rule/schedule target does).
ASYNC_FUNCTIONS: frozenset[str] = frozenset(
    fn.name for fn in catalog.FUNCTIONS if fn.async_invoke is not None
)


@dataclass(frozen=True)
class WsApiRef:
    """What the functions need of the WebSocket API (from the api stack)."""

    api_id: str
    stage: str


def bus_name(config: EnvConfig) -> str:
    """The event bus' name: fixed, so functions (deployed first) can name it without a reference."""
    return f"{config.lower_prefix}-bus"


def migrations_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def management_endpoint(stack: Stack, ws: WsApiRef) -> str:
    return f"https://{ws.api_id}.execute-api.{stack.region}.{stack.url_suffix}/{ws.stage}"


def connections_arns(stack: Stack, ws: WsApiRef) -> list[str]:
    """The @connections ARNs, one per method the management API uses (POST send, GET, DELETE)."""
    return [
        stack.format_arn(
            service="execute-api", resource=ws.api_id, resource_name=f"{ws.stage}/{method}/@connections/*"
        )
        for method in ("POST", "GET", "DELETE")
    ]


class FunctionsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        vpc: ec2.IVpc,
        data: DataStack,
        ws: WsApiRef,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        if problems := catalog.catalog_problems():
            raise ValueError("catalog problems: " + "; ".join(problems))
        self.config = config
        self.ws = ws
        removal = RemovalPolicy.RETAIN if config.deletion_protection else RemovalPolicy.DESTROY
        self.layer = shared_layer(self, "SharedLayer", RUNTIME)

        # --- resources owned here because functions are their only users ------------------
        self.jwt_secret = secretsmanager.Secret(
            self,
            "JwtSigningKey",
            description="ES256 JWT signing key (PEM); generated by the bootstrap custom resource",
            # A placeholder the bootstrap handler replaces with a real key on first deploy.
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True),
            removal_policy=removal,
        )
        self.notification_topic = sns.Topic(
            self,
            "NotificationTopic",
            display_name="Chatflow notifications",
            enforce_ssl=True,
            master_key=sns_managed_key(self, "NotificationsKey"),
        )
        self.queues: dict[str, sqs.Queue] = {}
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        for trigger in catalog.QUEUES:
            queue, dlq = trigger_queue(self, trigger)
            self.queues[trigger.name] = queue
            self.dead_letter_queues[f"queue-{trigger.name}"] = dlq

        # --- functions ---------------------------------------------------------------------
        self.functions: dict[str, lambda_.Function] = {}
        #: What API integrations and event targets invoke: the ``live`` alias where SnapStart is on.
        self.invocables: dict[str, lambda_.IFunction] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        common_env = {
            "ENV": config.env,
            "SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": "Chatflow",
            "POWERTOOLS_LOG_LEVEL": config.log_level,
            "POWERTOOLS_LOGGER_LOG_EVENT": "false",
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            "POWERTOOLS_PARAMETERS_MAX_AGE": "300",
            **catalog.RUNTIME_ENVIRONMENT,
        }
        bootstrap = catalog.function(BOOTSTRAP_FUNCTION)
        self._add_function(bootstrap, common_env, vpc=vpc, data=data, ws=ws, extra_env={})
        public_keys = self._bootstrap_resources(data)
        # `make deploy` / `make admin` invoke it directly for operator commands (infra/deploy).
        CfnOutput(
            self,
            OPERATOR_FUNCTION_OUTPUT,
            value=self.functions[BOOTSTRAP_FUNCTION].function_name,
            description="operator commands: migrate, promote/demote/show/delete <handle>",
        )
        jwt_env = {
            "JWT_ISSUER": config.jwt_issuer,
            "JWT_AUDIENCE": config.jwt_audience,
        }
        for fn in catalog.FUNCTIONS:
            if fn.name == BOOTSTRAP_FUNCTION:
                continue
            extra: dict[str, str] = {}
            if Need.JWT_SIGN in fn.needs or Need.JWT_VERIFY in fn.needs:
                extra.update(jwt_env)
            if Need.JWT_VERIFY in fn.needs:
                extra["JWT_PUBLIC_KEYS"] = public_keys.get_att_string("PublicKeys")
            self._add_function(fn, common_env, vpc=vpc, data=data, ws=ws, extra_env=extra)

        for trigger in catalog.QUEUES:
            self.functions[trigger.function].add_event_source(
                event_sources.SqsEventSource(
                    self.queues[trigger.name], batch_size=trigger.batch_size, report_batch_item_failures=True
                )
            )

    # ------------------------------------------------------------------------------------------
    def _add_function(
        self,
        fn: catalog.Function,
        common_env: dict[str, str],
        *,
        vpc: ec2.IVpc,
        data: DataStack,
        ws: WsApiRef,
        extra_env: dict[str, str],
    ) -> None:
        if not fn.module_path.is_file():
            raise FileNotFoundError(f"catalog function {fn.name!r}: {fn.module_path} does not exist")
        ident = f"{_pascal(fn.name)}Fn"
        log_group = logs.LogGroup(
            self,
            f"{ident}Logs",
            retention=retention(self.config.log_retention_days),
            removal_policy=RemovalPolicy.RETAIN if self.config.is_prod else RemovalPolicy.DESTROY,
        )
        in_vpc = bool(fn.needs & {Need.POSTGRES, Need.REDIS})
        role = iam.Role(
            self,
            f"{ident}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"chatflow {fn.name}: catalog needs {sorted(n.value for n in fn.needs)}",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        if in_vpc:
            # Lambda's hyperplane ENIs: these actions do not support resource-level scoping.
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeSubnets",
                        "ec2:DeleteNetworkInterface",
                        "ec2:AssignPrivateIpAddresses",
                        "ec2:UnassignPrivateIpAddresses",
                    ],
                    resources=["*"],
                )
            )
        env = {**common_env, **fn.environment, **extra_env}
        env.update(self._grant_needs(fn, role, data, ws))
        function = lambda_.Function(
            self,
            ident,
            description=fn.description[:256],
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=fn.handler,
            code=lambda_.Code.from_asset(str(fn.code_dir), exclude=["__pycache__", "*.pyc", "tests"]),
            layers=[self.layer],
            memory_size=fn.memory_mb,
            timeout=Duration.seconds(fn.timeout_s),
            environment=env,
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=fn.reserved_concurrency,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if fn.snapstart else None,
            vpc=vpc if in_vpc else None,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
            if in_vpc
            else None,
            security_groups=[data.clients_sg] if in_vpc else None,
        )
        self.functions[fn.name] = function
        self.log_groups[fn.name] = log_group
        invocable: lambda_.IFunction = function
        if fn.snapstart:
            # SnapStart applies to published versions only: everything invokes the alias.
            invocable = lambda_.Alias(
                self, f"{ident}Live", alias_name="live", version=function.current_version
            )
            Validations.of(function).acknowledge(
                Acknowledgment(
                    id="Annotation::@aws-cdk/aws-lambda:snapStartRequirePublish",
                    reason="the live alias publishes a version on every change; integrations invoke it",
                )
            )
        self.invocables[fn.name] = invocable
        if fn.async_invoke is not None:
            failures = _queue(
                self,
                f"{ident}AsyncFailures",
                retention_days=14,
                queue_name=catalog.async_failure_queue_name(self.config.lower_prefix, fn.name),
            )
            self.dead_letter_queues[f"async-{fn.name}"] = failures
            lambda_.EventInvokeConfig(
                self,
                f"{ident}AsyncConfig",
                function=function,
                qualifier="live" if fn.snapstart else "$LATEST",
                retry_attempts=fn.async_invoke.max_retry_attempts,
                max_event_age=Duration.seconds(fn.async_invoke.max_event_age_s),
                on_failure=destinations.SqsDestination(failures),
            )

    def _grant_needs(
        self, fn: catalog.Function, role: iam.Role, data: DataStack, ws: WsApiRef
    ) -> dict[str, str]:
        """IAM statements and environment variables for each need of ``fn``."""
        env: dict[str, str] = {}
        needs = fn.needs
        if Need.POSTGRES in needs:
            # Least privilege: DML only, except for the function that runs the migrations.
            user = DB_OWNER if fn.name == BOOTSTRAP_FUNCTION else DB_RUNTIME_USER
            proxy_id = Fn.import_value(data.proxy_resource_id_export)
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["rds-db:connect"],
                    resources=[
                        f"arn:{Aws.PARTITION}:rds-db:{Aws.REGION}:{Aws.ACCOUNT_ID}:dbuser:{proxy_id}/{user}"
                    ],
                )
            )
            query = "sslmode=verify-full&sslrootcert=system"
            env["DATABASE_URL"] = f"postgresql://{user}@{data.proxy_endpoint}:{DB_PORT}/{DB_NAME}?{query}"
            env["DATABASE_READER_URL"] = (
                f"postgresql://{user}@{data.proxy_reader_endpoint}:{DB_PORT}/{DB_NAME}?{query}"
            )
            env["DATABASE_IAM_AUTH"] = "true"
        if Need.REDIS in needs:
            data.cache_secret.grant_read(role)
            env["REDIS_URL"] = f"rediss://{data.cache_endpoint}:{CACHE_PORT}/0"
            env["REDIS_AUTH_SECRET_ARN"] = data.cache_secret.secret_arn
        if Need.JWT_SIGN in needs:
            self.jwt_secret.grant_read(role)
            env["JWT_PRIVATE_KEY_SECRET_ARN"] = self.jwt_secret.secret_arn
        if Need.JWT_KEYGEN in needs:
            self.jwt_secret.grant_read(role)
            self.jwt_secret.grant_write(role)
        if Need.MANAGE_CONNECTIONS in needs:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["execute-api:ManageConnections"], resources=connections_arns(self, ws)
                )
            )
            env["WS_MANAGEMENT_ENDPOINT"] = management_endpoint(self, ws)
        if Need.PUT_EVENTS in needs:
            name = bus_name(self.config)
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["events:PutEvents"],
                    resources=[self.format_arn(service="events", resource="event-bus", resource_name=name)],
                )
            )
            env["EVENT_BUS_NAME"] = name
        if Need.FANOUT_QUEUE in needs:
            queue = self.queues["fanout"]
            queue.grant_send_messages(role)
            env["FANOUT_QUEUE_URL"] = queue.queue_url
        if Need.NOTIFY_TOPIC in needs:
            # sns:Publish only. No KMS statement: the topic's key is the AWS managed alias/aws/sns,
            # whose key policy already lets this account's principals use it through SNS
            # (grant_publish would add kms:Decrypt/GenerateDataKey* on every key/* of the account).
            role.add_to_policy(
                iam.PolicyStatement(actions=["sns:Publish"], resources=[self.notification_topic.topic_arn])
            )
            env["NOTIFICATION_TOPIC_ARN"] = self.notification_topic.topic_arn
        return env

    def _bootstrap_resources(self, data: DataStack) -> CustomResource:
        """The JWT key and migration custom resources; returns the key resource (its attributes)."""
        handler = self.functions[BOOTSTRAP_FUNCTION]
        keys = CustomResource(
            self,
            "JwtKeys",
            service_token=handler.function_arn,
            resource_type="Custom::ChatflowJwtKeys",
            properties={
                "Action": "jwt-keys",
                "SecretArn": self.jwt_secret.secret_arn,
                # Change to rotate: a new key is generated, the previous public key stays valid.
                "Rotation": self.node.try_get_context("chatflow:jwtKeyRotation") or "1",
            },
        )
        migrations = CustomResource(
            self,
            "Migrations",
            service_token=handler.function_arn,
            resource_type="Custom::ChatflowMigrations",
            properties={"Action": "migrate", "MigrationsHash": migrations_hash()},
        )
        # The proxy must accept connections (its target registered) before migrations run.
        migrations.node.add_dependency(data.proxy)
        return keys
