"""APIs: the WebSocket API and the HTTP API, in two stacks.

:class:`ApiStack` (before the functions) holds the APIs, their stages, throttling and access logs:
the functions need the WebSocket API's id for ``WS_MANAGEMENT_ENDPOINT`` and for the
``execute-api:ManageConnections`` ARN, so the API must exist before them.
:class:`ApiRoutesStack` (after the functions) wires routes, route responses, authorizers and
integrations from the catalog to the functions. Both stages auto-deploy, so a route change in the
routes stack is live without a deployment resource.

Custom domains (optional, per environment in cdk.json): a regional, dual-stack API Gateway domain
name per API with TLS 1.2 and an API mapping of its stage at the root, so clients use
``wss://<wsDomainName>`` and ``https://<httpDomainName>``. The certificate is either given
(``certificateArn``; the DNS records are then the operator's, the stack outputs their targets) or
issued here with DNS validation in a Route 53 hosted zone, which also gets the A/AAAA alias records.
Outputs ``WebSocketUrl`` / ``HttpApiUrl`` are the URLs clients should use (the custom ones when
configured) -- ``make deploy`` prints them as CHATFLOW_WS_URL / CHATFLOW_HTTP_URL.
"""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra import catalog
from infra.common import pascal, retention
from infra.config import EnvConfig

WS_STAGE = "v1"
HTTP_STAGE = "$default"

#: Access log lines (JSON): enough to find a request by id and see who/what/how long.
_WS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "connectionId": "$context.connectionId",
    "routeKey": "$context.routeKey",
    "eventType": "$context.eventType",
    "status": "$context.status",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integration.error",
    "authorizerError": "$context.authorizer.error",
    "requestTime": "$context.requestTimeEpoch",
}
_HTTP_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
    "requestTime": "$context.requestTimeEpoch",
}


class ApiStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        removal = RemovalPolicy.RETAIN if config.is_prod else RemovalPolicy.DESTROY

        # WebSocket (and REST) access logs are written with the account's API Gateway CloudWatch
        # role; HTTP APIs use a service-linked role. It is ONE setting per account and region:
        # where several environments share an account, let one of them manage it
        # (-c chatflow:manageApiGatewayAccount=false on the others).
        account: apigw.CfnAccount | None = None
        if config.manage_api_gateway_account:
            cw_role = iam.Role(
                self,
                "ApiGatewayLogsRole",
                assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
                managed_policies=[
                    iam.ManagedPolicy.from_aws_managed_policy_name(
                        "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                    )
                ],
            )
            account = apigw.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=cw_role.role_arn)

        self.ws_api = apigwv2.WebSocketApi(
            self,
            "WsApi",
            api_name=f"{config.lower_prefix}-ws",
            description="Chatflow realtime: routes in the ApiRoutes stack (infra/catalog.py WS_ROUTES)",
            route_selection_expression="$request.body.action",
        )
        self.ws_stage = apigwv2.WebSocketStage(
            self,
            "WsStage",
            web_socket_api=self.ws_api,
            stage_name=WS_STAGE,
            auto_deploy=True,
            detailed_metrics_enabled=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.ws_rate_limit, burst_limit=config.ws_burst_limit
            ),
        )
        ws_logs = logs.LogGroup(
            self, "WsAccessLogs", retention=retention(config.log_retention_days), removal_policy=removal
        )
        _access_logs(self.ws_stage, ws_logs, _WS_LOG_FORMAT)
        ws_cfn = self.ws_stage.node.default_child
        assert isinstance(ws_cfn, apigwv2.CfnStage)
        ws_cfn.add_property_override("DefaultRouteSettings.LoggingLevel", "ERROR")
        ws_cfn.add_property_override("DefaultRouteSettings.DataTraceEnabled", False)
        if account is not None:
            ws_cfn.node.add_dependency(account)

        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=f"{config.lower_prefix}-http",
            description="Chatflow HTTP API: routes in the ApiRoutes stack (infra/catalog.py HTTP_ROUTES)",
            create_default_stage=False,
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=list(config.cors_allow_origins),
                allow_methods=[apigwv2.CorsHttpMethod.ANY],
                allow_headers=["authorization", "content-type", "idempotency-key"],
                max_age=Duration.hours(1),
            ),
        )
        self.http_stage = apigwv2.HttpStage(
            self,
            "HttpStage",
            http_api=self.http_api,
            stage_name=HTTP_STAGE,
            auto_deploy=True,
            detailed_metrics_enabled=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.http_rate_limit, burst_limit=config.http_burst_limit
            ),
        )
        http_logs = logs.LogGroup(
            self, "HttpAccessLogs", retention=retention(config.log_retention_days), removal_policy=removal
        )
        _access_logs(self.http_stage, http_logs, _HTTP_LOG_FORMAT)

        # A fixed export name: the functions import it (Fn::ImportValue) for WS_MANAGEMENT_ENDPOINT
        # and their @connections IAM ARNs, which then read the same in every synth (cdk-nag
        # acknowledges those ARNs by their exact text, infra/nag.py).
        self.ws_api_id_export = f"{config.prefix}-WsApiId"
        CfnOutput(self, "WsApiId", value=self.ws_api.api_id, export_name=self.ws_api_id_export)

        managed = {"ws": self.ws_stage.url, "http": self.http_api.api_endpoint}
        final = dict(managed)
        if config.domains:
            final.update(self._custom_domains(config))
            CfnOutput(self, "WebSocketManagedUrl", value=managed["ws"], description="the execute-api URL")
            CfnOutput(self, "HttpApiManagedUrl", value=managed["http"], description="the execute-api URL")
        self.ws_url, self.http_url = final["ws"], final["http"]
        CfnOutput(self, "WebSocketUrl", value=self.ws_url, description="CHATFLOW_WS_URL: clients use it")
        CfnOutput(self, "HttpApiUrl", value=self.http_url, description="CHATFLOW_HTTP_URL: clients use it")

    def _custom_domains(self, config: EnvConfig) -> dict[str, str]:
        """Domain names, API mappings and (with a hosted zone) certificate + alias records;
        returns the final URL per configured API."""
        zone: route53.IHostedZone | None = None
        certificate: acm.ICertificate
        if config.certificate_arn:
            certificate = acm.Certificate.from_certificate_arn(self, "Certificate", config.certificate_arn)
        else:
            zone = route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.hosted_zone_name
            )
            first, *others = config.domains.values()
            certificate = acm.Certificate(
                self,
                "Certificate",
                domain_name=first,
                subject_alternative_names=others or None,
                validation=acm.CertificateValidation.from_dns(zone),
            )
        mapped: dict[str, tuple[apigwv2.IApi, apigwv2.IStage, str, str]] = {
            "ws": (self.ws_api, self.ws_stage, "wss", "WebSocket"),
            "http": (self.http_api, self.http_stage, "https", "Http"),
        }
        urls: dict[str, str] = {}
        for api_kind, domain in config.domains.items():
            api, stage, scheme, ident = mapped[api_kind]
            name = apigwv2.DomainName(
                self,
                f"{ident}Domain",
                domain_name=domain,
                certificate=certificate,
                endpoint_type=apigwv2.EndpointType.REGIONAL,
                ip_address_type=apigwv2.IpAddressType.DUAL_STACK,
                security_policy=apigwv2.SecurityPolicy.TLS_1_2,
            )
            # At the root: the stage (v1 / $default) is the whole API, no path prefix for clients.
            apigwv2.ApiMapping(self, f"{ident}Mapping", api=api, domain_name=name, stage=stage)
            if zone is not None:
                alias = route53.RecordTarget.from_alias(
                    route53_targets.ApiGatewayv2DomainProperties(
                        name.regional_domain_name, name.regional_hosted_zone_id
                    )
                )
                route53.ARecord(self, f"{ident}AliasA", zone=zone, record_name=domain, target=alias)
                route53.AaaaRecord(self, f"{ident}AliasAaaa", zone=zone, record_name=domain, target=alias)
            else:
                CfnOutput(
                    self,
                    f"{ident}DomainTarget",
                    value=name.regional_domain_name,
                    description=f"point {domain} here (CNAME, or a Route 53 alias)",
                )
            urls[api_kind] = f"{scheme}://{domain}"
        return urls


def _access_logs(
    stage: apigwv2.WebSocketStage | apigwv2.HttpStage, group: logs.LogGroup, fmt: dict[str, str]
) -> None:
    # Set on the L1: the L2 access-log destination fails through jsii (platform facts).
    cfn = stage.node.default_child
    assert isinstance(cfn, apigwv2.CfnStage)
    cfn.access_log_settings = apigwv2.CfnStage.AccessLogSettingsProperty(
        destination_arn=group.log_group_arn, format=json.dumps(fmt, separators=(",", ":"))
    )


class ApiRoutesStack(Stack):
    """Routes, route responses, authorizers and integrations -- all from the catalog."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        api: ApiStack,
        invocables: dict[str, lambda_.IFunction],
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        auth_by_name = {a.name: a for a in catalog.AUTHORIZERS}
        # Imported references scoped HERE: the L2 binds authorizers (and their Lambda permissions)
        # in the API construct's scope, which must be this stack, not the Api stack (a cycle).
        ws_api = apigwv2.WebSocketApi.from_web_socket_api_attributes(
            self, "WsApi", web_socket_id=api.ws_api.api_id, api_endpoint=api.ws_api.api_endpoint
        )
        http_api = apigwv2.HttpApi.from_http_api_attributes(
            self, "HttpApi", http_api_id=api.http_api.api_id, api_endpoint=api.http_api.api_endpoint
        )

        ws_integrations: dict[str, integrations.WebSocketLambdaIntegration] = {}
        ws_routes: dict[str, apigwv2.WebSocketRoute] = {}
        http_routes: dict[str, apigwv2.HttpRoute] = {}
        ws_authorizers: dict[str, authorizers.WebSocketLambdaAuthorizer] = {}
        for route in catalog.WS_ROUTES:
            integration = ws_integrations.get(route.function)
            if integration is None:
                integration = integrations.WebSocketLambdaIntegration(
                    f"Ws{pascal(route.function)}", invocables[route.function], timeout=Duration.seconds(29)
                )
                ws_integrations[route.function] = integration
            authorizer = None
            if route.authorizer:
                spec = auth_by_name[route.authorizer]
                authorizer = ws_authorizers.get(spec.name)
                if authorizer is None:
                    # WebSocket authorizers have no result-TTL setting in CloudFormation (HTTP
                    # APIs only): the catalog's cache_ttl_s applies to the HTTP authorizer.
                    authorizer = authorizers.WebSocketLambdaAuthorizer(
                        pascal(spec.name),
                        invocables[spec.function],
                        authorizer_name=spec.name,
                        identity_source=list(spec.identity_sources),
                    )
                    ws_authorizers[spec.name] = authorizer
            ws_routes[route.route_key] = apigwv2.WebSocketRoute(
                self,
                f"WsRoute{route_id(route.route_key)}",
                web_socket_api=ws_api,
                route_key=route.route_key,
                integration=integration,
                authorizer=authorizer,
                return_response=route.route_response,
            )

        http_integrations: dict[str, integrations.HttpLambdaIntegration] = {}
        http_authorizers: dict[str, authorizers.HttpLambdaAuthorizer] = {}
        for http_route in catalog.HTTP_ROUTES:
            http_integration = http_integrations.get(http_route.function)
            if http_integration is None:
                http_integration = integrations.HttpLambdaIntegration(
                    f"Http{pascal(http_route.function)}",
                    invocables[http_route.function],
                    payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
                )
                http_integrations[http_route.function] = http_integration
            http_authorizer = None
            if http_route.authorizer:
                spec = auth_by_name[http_route.authorizer]
                http_authorizer = http_authorizers.get(spec.name)
                if http_authorizer is None:
                    http_authorizer = authorizers.HttpLambdaAuthorizer(
                        pascal(spec.name),
                        invocables[spec.function],
                        authorizer_name=spec.name,
                        identity_source=list(spec.identity_sources),
                        response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
                        results_cache_ttl=Duration.seconds(spec.cache_ttl_s),
                    )
                    http_authorizers[spec.name] = http_authorizer
            http_routes[http_route.route_key] = apigwv2.HttpRoute(
                self,
                f"HttpRoute{route_id(http_route.route_key)}",
                http_api=http_api,
                route_key=apigwv2.HttpRouteKey.with_(http_route.path, apigwv2.HttpMethod(http_route.method)),
                integration=http_integration,
                authorizer=http_authorizer,
            )

        self._route_throttles(config, api, ws_routes, http_routes)

    def _route_throttles(
        self,
        config: EnvConfig,
        api: ApiStack,
        ws_routes: dict[str, apigwv2.WebSocketRoute],
        http_routes: dict[str, apigwv2.HttpRoute],
    ) -> None:
        """Per-route throttles, in every environment: each ``/auth/*`` route and ``$connect``.

        API Gateway refuses stage ``RouteSettings`` naming a route that does not exist yet ("Unable
        to find Route by key ... within the provided RouteSettings"), and the stages live in the
        Api stack, deployed BEFORE the routes (the functions need the API's id). So the settings
        are applied here, after the routes, with UpdateStage (an AwsCustomResource, re-applied
        whenever the limits or the set of routes change). Route settings replace the stage's
        defaults for that route entirely, hence the detailed metrics / logging values repeated."""
        auth_keys = sorted(k for k in http_routes if k.split(" ", 1)[1].startswith("/auth/"))
        targets = (
            (
                "Http",
                api.http_api.api_id,
                HTTP_STAGE,
                {
                    key: {
                        "ThrottlingRateLimit": config.auth_rate_limit,
                        "ThrottlingBurstLimit": config.auth_burst_limit,
                        "DetailedMetricsEnabled": True,
                    }
                    for key in auth_keys
                },
                [http_routes[k] for k in auth_keys],
            ),
            (
                "Ws",
                api.ws_api.api_id,
                WS_STAGE,
                {
                    "$connect": {
                        "ThrottlingRateLimit": config.connect_rate_limit,
                        "ThrottlingBurstLimit": config.connect_burst_limit,
                        "DetailedMetricsEnabled": True,
                        "LoggingLevel": "ERROR",
                        "DataTraceEnabled": False,
                    }
                },
                [ws_routes["$connect"]],
            ),
        )
        # The provider function's logs (one singleton for both calls): deploy-time only, nothing
        # worth keeping after a destroy, so never retained (unlike the functions' log groups).
        provider_logs = logs.LogGroup(
            self,
            "RouteThrottlesProviderLogs",
            retention=retention(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        for ident, api_id, stage, settings, routes in targets:
            call = cr.AwsSdkCall(
                service="ApiGatewayV2",
                action="UpdateStage",
                parameters={"ApiId": api_id, "StageName": stage, "RouteSettings": settings},
                physical_resource_id=cr.PhysicalResourceId.of(
                    f"{config.lower_prefix}-{ident.lower()}-route-throttles"
                ),
            )
            stage_arn = Stack.of(self).format_arn(
                service="apigateway", account="", resource=f"/apis/{api_id}/stages/{stage}"
            )
            throttles = cr.AwsCustomResource(
                self,
                f"{ident}RouteThrottles",
                on_create=call,
                on_update=call,
                policy=cr.AwsCustomResourcePolicy.from_statements(
                    [iam.PolicyStatement(actions=["apigateway:PATCH"], resources=[stage_arn])]
                ),
                install_latest_aws_sdk=False,
                log_group=provider_logs,
            )
            for route in routes:
                throttles.node.add_dependency(route)


def route_id(route_key: str) -> str:
    """A construct id for a route key: ``GET /rooms/{room_id}`` -> ``GETroomsroomid``."""
    return "".join(c for c in route_key if c.isalnum()) or "Root"
