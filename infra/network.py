"""Network: the VPC, its subnets and the VPC endpoints the functions use.

Subnets: public (NAT gateways only), private with egress (functions, cache rotation), isolated
(Aurora, RDS Proxy, ElastiCache: no route to the internet at all).

Why there is NO ``execute-api`` interface endpoint: with private DNS on, *every*
``*.execute-api.<region>.amazonaws.com`` name resolves to the endpoint, which serves only PRIVATE
REST APIs -- the WebSocket @connections management API (a public regional API) would answer 403
to fan-out. The functions reach it through the NAT gateway instead (docs/infrastructure.md).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, RemovalPolicy, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.common import retention
from infra.config import EnvConfig

VPC_CIDR = "10.40.0.0/16"

#: Interface endpoints for the AWS APIs the functions call (catalog needs -> services).
INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Events": ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE,
    "Sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
    "Sns": ec2.InterfaceVpcEndpointAwsService.SNS,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "XRay": ec2.InterfaceVpcEndpointAwsService.XRAY,
    "Monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
}


class NetworkStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig, **kwargs: object) -> None:
        self._zones = list(config.availability_zones)
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        if self._zones:
            Validations.of(self).acknowledge(
                Acknowledgment(
                    id="CloudFormation-Validate::W3010",
                    reason="availabilityZones are named in cdk.json for this pinned environment",
                )
            )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=config.max_azs,
            nat_gateways=config.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
                ec2.SubnetConfiguration(
                    name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
            restrict_default_security_group=True,
        )
        # Rejected traffic only: enough to debug security groups, cheap to keep.
        flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            retention=retention(config.log_retention_days),
            # CDK's default for log groups is RETAIN: `make destroy` would leave dev's behind.
            removal_policy=RemovalPolicy.RETAIN if config.is_prod else RemovalPolicy.DESTROY,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        # S3 and DynamoDB gateway endpoints are free: custom-resource responses (pre-signed S3
        # URLs) and layer downloads never need the NAT.
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        if config.vpc_endpoints:
            endpoint_sg = ec2.SecurityGroup(
                self,
                "EndpointSg",
                vpc=self.vpc,
                description="Interface endpoints: HTTPS from inside the VPC only",
                allow_all_outbound=False,
            )
            endpoint_sg.add_ingress_rule(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443), "HTTPS from the VPC")
            for name, service in INTERFACE_ENDPOINTS.items():
                self.vpc.add_interface_endpoint(
                    name,
                    service=service,
                    private_dns_enabled=True,
                    security_groups=[endpoint_sg],
                    open=False,  # the SG above already allows 443 from the VPC's literal CIDR
                    subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                )

    @property
    def availability_zones(self) -> list[str]:
        """The zones named in cdk.json when the environment is pinned: CDK would otherwise look
        them up in the account at synth time (a context lookup -- AWS credentials, and a
        cdk.context.json per account). Environment-agnostic: CDK's ``Fn::GetAZs`` tokens."""
        return self._zones or list(super().availability_zones)
