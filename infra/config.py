"""Deployment settings per environment (dev / staging / prod), read from CDK context.

`cdk.json` holds the defaults under ``chatflow:environments``; ``cdk deploy -c env=prod`` picks one,
and single values can be overridden on the command line
(``-c chatflow:alarmPageSubscriptions=oncall@example.com,https://events.pagerduty.com/...``).
``-c profile=localstack-community`` builds the reduced app LocalStack's community edition can run
(docs/localstack.md).

Why one frozen dataclass: every stack reads the same typed object, and a typo in cdk.json fails the
synth with a message naming the key instead of silently deploying a default.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from constructs import Node

EnvName = Literal["dev", "staging", "prod"]
Profile = Literal["aws", "localstack-community"]
ENVIRONMENTS: tuple[EnvName, ...] = ("dev", "staging", "prod")
PROFILES: tuple[Profile, ...] = ("aws", "localstack-community")


class ConfigError(ValueError):
    """The CDK context does not describe a valid environment."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnvConfig:
    env: EnvName
    profile: Profile = "aws"
    # --- network ---
    max_azs: int = 2
    nat_gateways: int = 1
    #: Interface endpoints cost ~7 USD/month per AZ each: dev reaches AWS APIs through the NAT.
    vpc_endpoints: bool = True
    # --- data ---
    min_acu: float = 0.5
    max_acu: float = 4.0
    readers: int = 1
    cache_node_type: str = "cache.t4g.small"
    #: Replicas per shard; 0 (a single node, no failover) is allowed in dev only.
    cache_replicas: int = 1
    backup_retention_days: int = 7
    deletion_protection: bool = False
    # --- logs, events, alarms ---
    log_retention_days: int = 30
    archive_retention_days: int = 14
    #: Receivers of the ``page`` / ``ticket`` alarm topics (infra/observability.py): email
    #: addresses, https:// URLs (pager or chat webhooks), Lambda or SQS ARNs (chat forwarders).
    alarm_page_subscriptions: tuple[str, ...] = ()
    alarm_ticket_subscriptions: tuple[str, ...] = ()
    #: Prefix of the runbook links in alarm descriptions, e.g. the repository's blob URL
    #: (``https://github.com/<org>/chatflow/blob/main``); empty: repository-relative paths.
    runbook_base_url: str = ""
    log_level: str = "INFO"
    schema_discovery: bool = False
    #: Also publish each error-budget SLO as a CloudWatch Application Signals SLO (enables
    #: Application Signals discovery in the account; off by default).
    application_signals: bool = False
    # --- APIs ---
    #: The account-wide API Gateway CloudWatch Logs role (WebSocket access/execution logs).
    manage_api_gateway_account: bool = True
    ws_rate_limit: int = 500
    ws_burst_limit: int = 1000
    http_rate_limit: int = 500
    http_burst_limit: int = 1000
    cors_allow_origins: tuple[str, ...] = ("*",)
    # --- tokens ---
    jwt_issuer: str = "chatflow"
    jwt_audience: str = "chatflow-clients"

    @property
    def prefix(self) -> str:
        """Stack-name / physical-name prefix, e.g. ``Chatflow-dev``."""
        return f"Chatflow-{self.env}"

    @property
    def lower_prefix(self) -> str:
        return f"chatflow-{self.env}"

    @property
    def is_prod(self) -> bool:
        return self.env == "prod"

    @property
    def final_snapshot(self) -> bool:
        """Aurora takes a final snapshot when its stack is deleted everywhere but dev."""
        return self.env != "dev"

    def validate(self) -> None:
        if self.cache_replicas == 0 and self.env != "dev":
            raise ConfigError(f"{self.env}: a single cache node (cacheReplicas 0) is allowed in dev only")
        if not 0 <= self.cache_replicas <= 5:
            raise ConfigError("cacheReplicas must be 0..5")
        if not 0.5 <= self.min_acu <= self.max_acu <= 256:
            raise ConfigError("need 0.5 <= minAcu <= maxAcu <= 256")
        if self.max_azs < 2:
            raise ConfigError("maxAzs must be >= 2 (Aurora and the cache subnet group need two AZs)")
        if self.is_prod and not self.deletion_protection:
            raise ConfigError("prod must keep deletionProtection on")


def load(node: Node) -> EnvConfig:
    """The environment selected by the ``env`` context key (default from cdk.json: dev)."""
    env = str(node.try_get_context("env") or "dev")
    profile = str(node.try_get_context("profile") or "aws")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown env {env!r}; expected one of {', '.join(ENVIRONMENTS)}")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    table = node.try_get_context("chatflow:environments") or {}
    raw: dict[str, Any] = dict(table.get(env) or {})
    # Per-key overrides from the command line: -c chatflow:alarmPageSubscriptions=ops@example.com
    for key in list(_FIELDS_BY_CAMEL):
        override = node.try_get_context(f"chatflow:{key}")
        if override is not None:
            raw[key] = override
    values: dict[str, Any] = {"env": env, "profile": profile}
    for key, value in raw.items():
        field = _FIELDS_BY_CAMEL.get(key)
        if field is None:
            raise ConfigError(f"chatflow:environments.{env}: unknown key {key!r}")
        values[field.name] = _coerce(key, value, field)
    config = EnvConfig(**values)
    config.validate()
    return config


_FIELDS_BY_CAMEL = {
    "".join(p if i == 0 else p.capitalize() for i, p in enumerate(f.name.split("_"))): f
    for f in dataclasses.fields(EnvConfig)
    if f.name not in ("env", "profile")
}


def _coerce(key: str, value: Any, field: dataclasses.Field[Any]) -> Any:
    default = field.default
    # Context passed with -c arrives as a string; cdk.json values arrive typed.
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.lower() not in ("true", "false"):
                raise ConfigError(f"{key}: expected true/false, got {value!r}")
            return value.lower() == "true"
        return bool(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return tuple(str(v) for v in value)
    return str(value)
