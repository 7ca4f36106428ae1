"""Composition: which stacks exist, in which order, and what they hand each other."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk

from infra import config as config_module
from infra.api import WS_STAGE, ApiRoutesStack, ApiStack
from infra.config import EnvConfig
from infra.data import DataStack
from infra.events import EventsStack
from infra.functions import ASYNC_FUNCTIONS, SERVICE_NAME, FunctionsStack, WsApiRef
from infra.nag import apply_suppressions
from infra.network import NetworkStack
from infra.observability import MonitoredResources, ObservabilityStack


@dataclass
class ChatflowStacks:
    config: EnvConfig
    stacks: dict[str, cdk.Stack]


def build_stacks(app: cdk.App) -> ChatflowStacks:
    config = config_module.load(app.node)
    # DBProxyTargetGroup has no Tags property (CloudFormation's schema rejects them).
    untaggable = ["AWS::RDS::DBProxyTargetGroup"]
    cdk.Tags.of(app).add("project", "chatflow", exclude_resource_types=untaggable)
    cdk.Tags.of(app).add("environment", config.env, exclude_resource_types=untaggable)
    if config.profile == "localstack-community":
        from infra.localstack import LocalStackCommunityStack

        stack = LocalStackCommunityStack(app, f"{config.prefix}-LocalStack", config=config)
        result = ChatflowStacks(config, {"LocalStack": stack})
        apply_suppressions(result.config, result.stacks)
        return result

    prefix = config.prefix
    # Pinned in cdk.json (account + region), or None: environment-agnostic templates that deploy
    # to whatever account/region the credentials name.
    env = cdk.Environment(account=config.account, region=config.region) if config.pinned else None
    network = NetworkStack(
        app, f"{prefix}-Network", config=config, env=env, description="Chatflow: VPC and endpoints"
    )
    data = DataStack(
        app,
        f"{prefix}-Data",
        config=config,
        vpc=network.vpc,
        env=env,
        description="Chatflow: Aurora, RDS Proxy, Valkey",
    )
    api = ApiStack(
        app, f"{prefix}-Api", config=config, env=env, description="Chatflow: WebSocket and HTTP APIs"
    )
    functions = FunctionsStack(
        app,
        f"{prefix}-Functions",
        config=config,
        vpc=network.vpc,
        data=data,
        ws=WsApiRef(api_id=cdk.Fn.import_value(api.ws_api_id_export), stage=WS_STAGE),
        env=env,
        description="Chatflow: Lambda functions, layer, queues, deploy-time custom resources",
    )
    functions.add_stack_dependency(api, "the WebSocket API id is imported by export name")
    functions.add_stack_dependency(data, "the RDS Proxy resource id is imported by export name")
    routes = ApiRoutesStack(
        app,
        f"{prefix}-ApiRoutes",
        config=config,
        api=api,
        invocables=functions.invocables,
        env=env,
        description="Chatflow: API routes, authorizers and integrations from the catalog",
    )
    events = EventsStack(
        app,
        f"{prefix}-Events",
        config=config,
        invocables=functions.invocables,
        env=env,
        description="Chatflow: event bus, archive, rules and schedules from the catalog",
    )
    dlqs = {**functions.dead_letter_queues, **events.dead_letter_queues}
    resources = MonitoredResources(
        refs={
            "ws_api_id": api.ws_api.api_id,
            "ws_stage": WS_STAGE,
            "http_api_id": api.http_api.api_id,
            "http_stage": api.http_stage.stage_name,
            "db_cluster": data.cluster.cluster_identifier,
            "db_proxy": data.proxy.db_proxy_name,
            # Powertools' metrics dimension (POWERTOOLS_SERVICE_NAME of every function).
            "service": SERVICE_NAME,
            **{f"fn:{name}": fn.function_name for name, fn in functions.functions.items()},
        },
        each={
            "dlq": {label: queue.queue_name for label, queue in dlqs.items()},
            "cache_node": {node: node for node in data.cache_node_ids},
            "async_fn": {name: functions.functions[name].function_name for name in sorted(ASYNC_FUNCTIONS)},
        },
    )
    observability = ObservabilityStack(
        app,
        f"{prefix}-Observability",
        config=config,
        resources=resources,
        env=env,
        description="Chatflow: SLO alarms, dashboard, page and ticket alarm topics",
    )
    result = ChatflowStacks(
        config,
        {
            "Network": network,
            "Data": data,
            "Api": api,
            "Functions": functions,
            "ApiRoutes": routes,
            "Events": events,
            "Observability": observability,
        },
    )
    apply_suppressions(result.config, result.stacks)
    return result
