"""Data: Aurora PostgreSQL Serverless v2 behind RDS Proxy, and ElastiCache (Valkey).

- Aurora: a writer and reader(s), storage encrypted, TLS forced (``rds.force_ssl``), the master
  secret in Secrets Manager rotated every 30 days; a final snapshot when the stack is deleted
  (staging, prod; dev is disposable).
- Two database users. :data:`DB_OWNER` (the master user) owns the schema; only the deploy-time
  ``migrate`` function connects as it. :data:`DB_RUNTIME_USER` (created by migration 0050:
  DML only, owner of nothing, no DDL) is what every other function connects as.
- RDS Proxy: TLS required, IAM auth required for every client. Default auth scheme IAM_AUTH
  (end-to-end IAM): the proxy signs in to Aurora as the runtime user with IAM too, so that user
  has no password anywhere (``rds_iam``; the proxy role may ``rds-db:connect`` as it and nothing
  else). The owner is reached through the master secret the proxy holds (it re-reads it after a
  rotation); functions never read that secret. A read-only proxy endpoint for DATABASE_READER_URL.
- ElastiCache Valkey replication group: TLS in transit, encryption at rest, an AUTH token from
  Secrets Manager, multi-AZ automatic failover (dev may run one node), a non-default port and
  ``maxmemory-policy noeviction``. Valkey holds STATE, not only caches: the connection registry,
  room subscriptions, presence and rate-limit keys all carry TTLs (so stale entries expire), and
  under ``volatile-lru`` any of them could be evicted, silently dropping deliveries. With
  noeviction a full node refuses writes instead (loud, alarmed: SLOs redis-memory-saturation,
  redis-evictions), and the caches expire by their TTLs.
- Security groups live here, with the resources they guard (a separate network-stack SG caused a
  cross-stack cycle): functions attach :attr:`DataStack.clients_sg`, the only source allowed in.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.common import retention
from infra.config import EnvConfig

DB_NAME = "chatflow"
#: The master user: owns the schema; only ``migrate`` connects as it (through the proxy's secret).
DB_OWNER = "chatflow_admin"
#: The DML-only user of migration 0050 (``chatflow.adapters.postgres.migrate.RUNTIME_ROLE``).
DB_RUNTIME_USER = "chatflow_app"
DB_PORT = 5432
CACHE_PORT = 6380  # not the default 6379 (AwsSolutions-AEC5)
CACHE_ENGINE_VERSION = "8.0"
CACHE_PARAMETER_FAMILY = "valkey8"
AURORA_VERSION = rds.AuroraPostgresEngineVersion.VER_17_4


class DataStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvConfig, vpc: ec2.IVpc, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.config = config
        removal = RemovalPolicy.RETAIN if config.deletion_protection else RemovalPolicy.DESTROY
        isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

        self.clients_sg = ec2.SecurityGroup(
            self, "ClientsSg", vpc=vpc, description="Functions that use Postgres or Redis"
        )
        db_sg = ec2.SecurityGroup(
            self, "DbSg", vpc=vpc, description="Aurora: from RDS Proxy only", allow_all_outbound=False
        )
        proxy_sg = ec2.SecurityGroup(
            self, "ProxySg", vpc=vpc, description="RDS Proxy: from functions only", allow_all_outbound=False
        )
        cache_sg = ec2.SecurityGroup(
            self, "CacheSg", vpc=vpc, description="Valkey: from functions only", allow_all_outbound=False
        )
        proxy_sg.add_ingress_rule(self.clients_sg, ec2.Port.tcp(DB_PORT), "functions to RDS Proxy")
        proxy_sg.add_egress_rule(db_sg, ec2.Port.tcp(DB_PORT), "RDS Proxy to Aurora")
        db_sg.add_ingress_rule(proxy_sg, ec2.Port.tcp(DB_PORT), "RDS Proxy to Aurora")
        cache_sg.add_ingress_rule(self.clients_sg, ec2.Port.tcp(CACHE_PORT), "functions to Valkey")

        # --- Aurora PostgreSQL Serverless v2 -------------------------------------------------
        parameters = rds.ParameterGroup(
            self,
            "DbParameters",
            engine=rds.DatabaseClusterEngine.aurora_postgres(version=AURORA_VERSION),
            description="Chatflow: TLS only, statement logging of slow queries",
            parameters={"rds.force_ssl": "1", "log_min_duration_statement": "1000"},
        )
        readers = [
            rds.ClusterInstance.serverless_v2(
                f"reader{i + 1}",
                scale_with_writer=i == 0,
                enable_performance_insights=True,
                auto_minor_version_upgrade=True,
            )
            for i in range(config.readers)
        ]
        self.cluster = rds.DatabaseCluster(
            self,
            "Db",
            engine=rds.DatabaseClusterEngine.aurora_postgres(version=AURORA_VERSION),
            credentials=rds.Credentials.from_generated_secret(DB_OWNER),
            default_database_name=DB_NAME,
            writer=rds.ClusterInstance.serverless_v2(
                "writer", enable_performance_insights=True, auto_minor_version_upgrade=True
            ),
            readers=readers,
            serverless_v2_min_capacity=config.min_acu,
            serverless_v2_max_capacity=config.max_acu,
            vpc=vpc,
            vpc_subnets=isolated,
            security_groups=[db_sg],
            parameter_group=parameters,
            storage_encrypted=True,
            iam_authentication=True,
            deletion_protection=config.deletion_protection,
            removal_policy=RemovalPolicy.SNAPSHOT if config.final_snapshot else RemovalPolicy.DESTROY,
            backup=rds.BackupProps(retention=Duration.days(config.backup_retention_days)),
            cloudwatch_logs_exports=["postgresql"],
            cloudwatch_logs_retention=retention(config.log_retention_days),
            port=DB_PORT,
        )
        assert self.cluster.secret is not None
        self.db_secret = self.cluster.secret
        # Rotation Lambda (hosted by Secrets Manager) in the private subnets: it reaches the
        # Secrets Manager API through the endpoint or NAT, and Aurora directly.
        rotation_sg = ec2.SecurityGroup(
            self, "RotationSg", vpc=vpc, description="Secrets Manager rotation of the Aurora secret"
        )
        db_sg.add_ingress_rule(rotation_sg, ec2.Port.tcp(DB_PORT), "secret rotation to Aurora")
        self.cluster.add_rotation_single_user(
            automatically_after=Duration.days(30),
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_group=rotation_sg,
        )

        # --- RDS Proxy: IAM auth + TLS required, end-to-end IAM for the runtime user -------------
        proxy_role = iam.Role(
            self,
            "ProxyRole",
            assumed_by=iam.ServicePrincipal("rds.amazonaws.com"),
            description="RDS Proxy: the owner's secret, IAM sign-in to Aurora as the runtime user",
        )
        proxy_role.add_to_policy(
            iam.PolicyStatement(
                actions=["rds-db:connect"],
                resources=[
                    self.format_arn(
                        service="rds-db",
                        resource="dbuser",
                        resource_name=f"{self.cluster.cluster_resource_identifier}/{DB_RUNTIME_USER}",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        self.proxy = self.cluster.add_proxy(
            "Proxy",
            # Only the owner has a secret; every other user (the runtime user) signs in end to end
            # with IAM, client -> proxy -> Aurora.
            secrets=[self.db_secret],
            default_auth_scheme=rds.DefaultAuthScheme.IAM_AUTH,
            role=proxy_role,
            vpc=vpc,
            vpc_subnets=isolated,
            security_groups=[proxy_sg],
            iam_auth=True,
            require_tls=True,
            debug_logging=False,
            idle_client_timeout=Duration.minutes(30),
        )
        reader_endpoint = rds.CfnDBProxyEndpoint(
            self,
            "ProxyReader",
            db_proxy_endpoint_name=f"{config.lower_prefix}-reader",
            db_proxy_name=self.proxy.db_proxy_name,
            vpc_subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
            vpc_security_group_ids=[proxy_sg.security_group_id],
            target_role="READ_ONLY",
        )
        self.proxy_endpoint = self.proxy.endpoint
        # The proxy's resource id (prx-...) names it in rds-db:connect ARNs. Exported under a fixed
        # name: splitting the ARN in the importing stack would split a cross-stack output, which
        # cfn-lint (E1022) rejects.
        self.proxy_resource_id_export = f"{config.prefix}-DbProxyResourceId"
        CfnOutput(
            self,
            "DbProxyResourceId",
            value=Fn.select(6, Fn.split(":", self.proxy.db_proxy_arn)),
            export_name=self.proxy_resource_id_export,
        )
        self.proxy_reader_endpoint = reader_endpoint.attr_endpoint

        # --- ElastiCache Valkey ----------------------------------------------------------------
        self.cache_secret = secretsmanager.Secret(
            self,
            "CacheAuthToken",
            description="Valkey AUTH token (ElastiCache)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=removal,
        )
        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "CacheSubnets",
            description="Chatflow cache: isolated subnets",
            subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )
        cache_params = elasticache.CfnParameterGroup(
            self,
            "CacheParameters",
            cache_parameter_group_family=CACHE_PARAMETER_FAMILY,
            description="Chatflow: never evict (registry, subscriptions, presence, limits are state)",
            properties={"maxmemory-policy": "noeviction"},
        )
        slow_log = logs.LogGroup(
            self, "CacheSlowLog", retention=retention(config.log_retention_days), removal_policy=removal
        )
        failover = config.cache_replicas > 0
        self.cache_id = f"{config.lower_prefix}-cache"
        self.cache = elasticache.CfnReplicationGroup(
            self,
            "Cache",
            replication_group_id=self.cache_id,
            replication_group_description="Chatflow presence, connection registry, caches, limits",
            engine="valkey",
            engine_version=CACHE_ENGINE_VERSION,
            cache_node_type=config.cache_node_type,
            num_node_groups=1,
            replicas_per_node_group=config.cache_replicas,
            automatic_failover_enabled=failover,
            multi_az_enabled=failover,
            port=CACHE_PORT,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            at_rest_encryption_enabled=True,
            # CloudFormation resolves the dynamic reference at deploy time; the token never
            # appears in the template.
            auth_token=self.cache_secret.secret_value.unsafe_unwrap(),
            cache_subnet_group_name=subnet_group.ref,
            cache_parameter_group_name=cache_params.ref,
            security_group_ids=[cache_sg.security_group_id],
            snapshot_retention_limit=config.backup_retention_days,
            auto_minor_version_upgrade=True,
            log_delivery_configurations=[
                elasticache.CfnReplicationGroup.LogDeliveryConfigurationRequestProperty(
                    destination_type="cloudwatch-logs",
                    log_format="json",
                    log_type="slow-log",
                    destination_details=elasticache.CfnReplicationGroup.DestinationDetailsProperty(
                        cloud_watch_logs_details=elasticache.CfnReplicationGroup.CloudWatchLogsDestinationDetailsProperty(
                            log_group=slow_log.log_group_name
                        )
                    ),
                )
            ],
        )
        self.cache.apply_removal_policy(removal)
        self.cache_endpoint = self.cache.attr_primary_end_point_address
        self.cache_reader_endpoint = self.cache.attr_reader_end_point_address
        #: Node ids (CacheClusterId metric dimension): <group>-001, -002, ...
        self.cache_node_ids = [f"{self.cache_id}-{i + 1:03d}" for i in range(config.cache_replicas + 1)]
