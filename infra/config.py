"""Deployment settings per environment (dev / staging / prod), read from CDK context.

`cdk.json` holds the defaults under ``chatflow:environments``; ``cdk deploy -c env=prod`` picks one,
and single values can be overridden on the command line
(``-c chatflow:alarmPageSubscriptions=oncall@example.com,https://events.pagerduty.com/...``).
``-c profile=localstack-community`` builds the reduced app LocalStack's community edition can run
(docs/localstack.md).

Where an environment lives (``account``, ``region``, ``availabilityZones``) and its optional custom
domains (``wsDomainName``, ``httpDomainName`` with ``certificateArn`` or ``hostedZoneId`` +
``hostedZoneName``) are keys of the same table; empty means environment-agnostic / managed URLs
(docs/infrastructure.md "Accounts, regions and domains").

Why one frozen dataclass: every stack reads the same typed object, and a typo in cdk.json fails the
synth with a message naming the key instead of silently deploying a default.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # no jsii at run time: the deploy tool reads this module without a CDK app
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
    # --- where: empty = environment-agnostic synth (deploys to the credentials' account/region) ---
    account: str = ""
    region: str = ""
    #: Pinning account/region makes ``Vpc(max_azs=...)`` look the AZs up in AWS at synth time;
    #: naming them keeps synth offline (required once account/region are set).
    availability_zones: tuple[str, ...] = ()
    # --- custom domains (optional; docs/infrastructure.md) ---
    ws_domain_name: str = ""
    http_domain_name: str = ""
    #: An ACM certificate (same region as the APIs) covering both names; DNS records are yours.
    certificate_arn: str = ""
    #: Or a Route 53 public hosted zone: the app issues a DNS-validated certificate and creates
    #: the A/AAAA alias records itself.
    hosted_zone_id: str = ""
    hosted_zone_name: str = ""
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
    #: Per-route limits (each route its own bucket), below the stage's: every ``/auth/*`` route of
    #: the HTTP API and the WebSocket ``$connect`` route (infra/api.py ``RouteThrottles``).
    auth_rate_limit: int = 50
    auth_burst_limit: int = 100
    connect_rate_limit: int = 100
    connect_burst_limit: int = 200
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

    @property
    def pinned(self) -> bool:
        """Account and region are named: the stacks are bound to that environment."""
        return bool(self.account and self.region)

    @property
    def domains(self) -> dict[str, str]:
        """The custom domain per API (``{"ws": ..., "http": ...}``), only those configured."""
        found = {"ws": self.ws_domain_name, "http": self.http_domain_name}
        return {api: name for api, name in found.items() if name}

    def validate(self) -> None:
        if self.cache_replicas == 0 and self.env != "dev":
            raise ConfigError(f"{self.env}: a single cache node (cacheReplicas 0) is allowed in dev only")
        if not 0 <= self.cache_replicas <= 5:
            raise ConfigError("cacheReplicas must be 0..5")
        if not 0.5 <= self.min_acu <= self.max_acu <= 256:
            raise ConfigError("need 0.5 <= minAcu <= maxAcu <= 256")
        if self.max_azs < 2:
            raise ConfigError("maxAzs must be >= 2 (Aurora and the cache subnet group need two AZs)")
        for what in ("auth", "connect"):
            rate, burst = getattr(self, f"{what}_rate_limit"), getattr(self, f"{what}_burst_limit")
            stage_rate = self.http_rate_limit if what == "auth" else self.ws_rate_limit
            if not 0 < rate <= stage_rate or burst < 1:
                raise ConfigError(
                    f"{what}RateLimit must be positive and at most the stage's rate ({stage_rate}); "
                    f"{what}BurstLimit positive"
                )
        if self.is_prod and not self.deletion_protection:
            raise ConfigError("prod must keep deletionProtection on")
        self._validate_placement()
        self._validate_domains()

    def _validate_placement(self) -> None:
        where = f"chatflow:environments.{self.env}"
        if self.account and not _ACCOUNT.fullmatch(self.account):
            raise ConfigError(f"{where}.account: expected 12 digits (as a JSON string), got {self.account!r}")
        if self.region and not _REGION.fullmatch(self.region):
            raise ConfigError(f"{where}.region: {self.region!r} is not a region name such as eu-west-1")
        if bool(self.account) != bool(self.region):
            raise ConfigError(f"{where}: name both account and region, or neither (environment-agnostic)")
        if self.availability_zones and not self.pinned:
            raise ConfigError(f"{where}.availabilityZones: only with account and region")
        if self.pinned and len(self.availability_zones) < self.max_azs:
            raise ConfigError(
                f"{where}: with account and region pinned, name {self.max_azs} availabilityZones too "
                f'(e.g. ["{self.region}a", "{self.region}b"]): otherwise synth must ask AWS for them'
            )
        for zone in self.availability_zones:
            if not re.fullmatch(re.escape(self.region) + r"[a-z]", zone):
                raise ConfigError(f"{where}.availabilityZones: {zone!r} is not a zone of {self.region}")

    def _validate_domains(self) -> None:
        where = f"chatflow:environments.{self.env}"
        zone = bool(self.hosted_zone_id or self.hosted_zone_name)
        for name in self.domains.values():
            if not _HOSTNAME.fullmatch(name):
                raise ConfigError(f"{where}: {name!r} is not a lower-case DNS name such as chat.example.com")
        if not self.domains:
            if self.certificate_arn or zone:
                raise ConfigError(f"{where}: certificateArn/hostedZone* need wsDomainName or httpDomainName")
            return
        if self.ws_domain_name == self.http_domain_name:
            # API Gateway cannot map a WebSocket API and an HTTP API to the same domain name.
            raise ConfigError(f"{where}: wsDomainName and httpDomainName must differ")
        if bool(self.certificate_arn) == zone:
            raise ConfigError(
                f"{where}: custom domains need exactly one of certificateArn or hostedZoneId + hostedZoneName"
            )
        if self.certificate_arn:
            match = _CERTIFICATE_ARN.fullmatch(self.certificate_arn)
            if match is None:
                raise ConfigError(f"{where}.certificateArn: no ACM certificate ARN: {self.certificate_arn!r}")
            if self.region and match["region"] != self.region:
                raise ConfigError(
                    f"{where}.certificateArn: the certificate is in {match['region']}, the APIs in "
                    f"{self.region} (a regional API Gateway domain needs a certificate of its own region)"
                )
            return
        if not (self.hosted_zone_id and self.hosted_zone_name):
            raise ConfigError(f"{where}: hostedZoneId and hostedZoneName go together")
        zone_name = self.hosted_zone_name.rstrip(".")
        for name in self.domains.values():
            if name != zone_name and not name.endswith("." + zone_name):
                raise ConfigError(f"{where}: {name!r} is not in the hosted zone {zone_name!r}")


_ACCOUNT = re.compile(r"\d{12}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_HOSTNAME = re.compile(r"(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_CERTIFICATE_ARN = re.compile(r"arn:aws[a-z-]*:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[A-Za-z0-9-]+")


def load(node: Node) -> EnvConfig:
    """The environment selected by the ``env`` context key (default from cdk.json: dev)."""
    return from_context(node.try_get_context)


def from_mapping(context: Mapping[str, Any]) -> EnvConfig:
    """The same from a plain context dict (cdk.json's ``context`` plus ``-c`` values), without a
    CDK app: what the deploy tool reads (infra/deploy)."""
    return from_context(context.get)


def from_context(get: Callable[[str], Any]) -> EnvConfig:
    env = str(get("env") or "dev")
    profile = str(get("profile") or "aws")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown env {env!r}; expected one of {', '.join(ENVIRONMENTS)}")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    table = get("chatflow:environments") or {}
    raw: dict[str, Any] = dict(table.get(env) or {})
    # Per-key overrides from the command line: -c chatflow:alarmPageSubscriptions=ops@example.com
    for key in list(_FIELDS_BY_CAMEL):
        override = get(f"chatflow:{key}")
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
