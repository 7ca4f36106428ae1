"""Per-environment placement (account / region / zones) and custom domains, from cdk.json context.

Three apps: the shared default one (tests/infra/conftest.py: environment-agnostic, no domains), a
PINNED prod with a given ACM certificate, and a dev with a Route 53 hosted zone in which the app
issues the certificate and creates the alias records. Both extra apps run the cdk-nag gate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import synth

pytestmark = pytest.mark.infra

Json = dict[str, Any]

ACCOUNT, REGION, ZONES = "111122223333", "eu-west-1", ("eu-west-1a", "eu-west-1b")
CERTIFICATE = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0f1e2d3c-aaaa-bbbb-cccc-000000000001"
WS_DOMAIN, HTTP_DOMAIN = "ws.chat.example.com", "api.chat.example.com"
ZONE_ID, ZONE_NAME = "Z0123456789EXAMPLE", "chat.example.com"


def resources(template: Json, kind: str) -> dict[str, Json]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def load_templates(outdir: Path, env: str) -> dict[str, Json]:
    prefix, suffix = f"Chatflow-{env}-", ".template.json"
    return {
        path.name.removeprefix(prefix).removesuffix(suffix): json.loads(path.read_text())
        for path in outdir.glob("*.template.json")
    }


def stack_environments(outdir: Path) -> set[str]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    return {
        a["environment"] for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"
    }


@pytest.fixture(scope="module")
def pinned_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("pinned")
    synth(
        outdir,
        nag=True,
        env="prod",
        **{
            "chatflow:account": ACCOUNT,
            "chatflow:region": REGION,
            "chatflow:availabilityZones": ",".join(ZONES),
            "chatflow:wsDomainName": WS_DOMAIN,
            "chatflow:httpDomainName": HTTP_DOMAIN,
            "chatflow:certificateArn": CERTIFICATE,
        },
    )
    return outdir


@pytest.fixture(scope="module")
def zone_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("zone")
    synth(
        outdir,
        nag=True,
        **{
            "chatflow:wsDomainName": WS_DOMAIN,
            "chatflow:httpDomainName": HTTP_DOMAIN,
            "chatflow:hostedZoneId": ZONE_ID,
            "chatflow:hostedZoneName": ZONE_NAME,
        },
    )
    return outdir


# --- placement ----------------------------------------------------------------------------------
def test_without_account_and_region_the_synth_is_environment_agnostic(
    cdk_out: Path, template_json: dict[str, Json]
) -> None:
    assert stack_environments(cdk_out) == {"aws://unknown-account/unknown-region"}
    subnets = resources(template_json["Network"], "AWS::EC2::Subnet").values()
    # Zones are chosen at deploy time, in whatever account the credentials name.
    assert all("Fn::GetAZs" in json.dumps(s["Properties"]["AvailabilityZone"]) for s in subnets)


def test_a_pinned_environment_deploys_to_its_account_and_region_without_lookups(pinned_out: Path) -> None:
    assert stack_environments(pinned_out) == {f"aws://{ACCOUNT}/{REGION}"}
    manifest = json.loads((pinned_out / "manifest.json").read_text())
    # A context lookup would make the offline synth ask AWS (and need a cdk.context.json per account).
    assert "missing" not in manifest
    network = load_templates(pinned_out, "prod")["Network"]
    assert "Fn::GetAZs" not in json.dumps(network)
    zones = {s["Properties"]["AvailabilityZone"] for s in resources(network, "AWS::EC2::Subnet").values()}
    assert zones == set(ZONES)


def test_pinned_templates_pass_cfn_lint(pinned_out: Path) -> None:
    templates = sorted(str(p) for p in pinned_out.glob("*.template.json"))
    # W3010 (literal availability zones) is the point of pinning; W3005 is CDK's redundant DependsOn.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "-i", "W3005", "W3010", "--", *templates],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- custom domains -------------------------------------------------------------------------------
def domain_names(api: Json) -> dict[str, Json]:
    """DomainName properties by domain, each with its logical id under "_id"."""
    return {
        r["Properties"]["DomainName"]: {**r["Properties"], "_id": key}
        for key, r in resources(api, "AWS::ApiGatewayV2::DomainName").items()
    }


def assert_domains_mapped_to_both_apis(api: Json, certificate: Any) -> None:
    names = domain_names(api)
    assert set(names) == {WS_DOMAIN, HTTP_DOMAIN}
    for props in names.values():
        (config,) = props["DomainNameConfigurations"]
        assert config["CertificateArn"] == certificate
        assert config["EndpointType"] == "REGIONAL"
        assert config["SecurityPolicy"] == "TLS_1_2"
        assert config["IpAddressType"] == "dualstack"
    apis = {k: v["Properties"]["ProtocolType"] for k, v in resources(api, "AWS::ApiGatewayV2::Api").items()}
    ws_api = next(k for k, t in apis.items() if t == "WEBSOCKET")
    http_api = next(k for k, t in apis.items() if t == "HTTP")
    mappings = {
        m["Properties"]["DomainName"]["Ref"]: m["Properties"]
        for m in resources(api, "AWS::ApiGatewayV2::ApiMapping").values()
    }
    ws_mapping = mappings[names[WS_DOMAIN]["_id"]]
    http_mapping = mappings[names[HTTP_DOMAIN]["_id"]]
    assert ws_mapping["ApiId"] == {"Ref": ws_api}
    assert ws_mapping["Stage"] == "v1"
    assert http_mapping["ApiId"] == {"Ref": http_api}
    assert http_mapping["Stage"] == "$default"
    # Mapped at the root: clients use wss://ws.chat.example.com, no path.
    assert "ApiMappingKey" not in ws_mapping
    assert "ApiMappingKey" not in http_mapping
    outputs = api["Outputs"]
    assert outputs["WebSocketUrl"]["Value"] == f"wss://{WS_DOMAIN}"
    assert outputs["HttpApiUrl"]["Value"] == f"https://{HTTP_DOMAIN}"
    assert "execute-api" in json.dumps(outputs["WebSocketManagedUrl"]["Value"])
    assert outputs["HttpApiManagedUrl"]["Value"] == {"Fn::GetAtt": [http_api, "ApiEndpoint"]}


def test_without_domains_the_outputs_are_the_managed_urls(template_json: dict[str, Json]) -> None:
    api = template_json["Api"]
    assert not resources(api, "AWS::ApiGatewayV2::DomainName")
    outputs = api["Outputs"]
    ws_url = json.dumps(outputs["WebSocketUrl"]["Value"])
    assert ws_url.startswith('{"Fn::Join": ["", ["wss://"')
    assert ".execute-api." in ws_url
    assert ws_url.endswith('"/v1"]]}')
    assert outputs["HttpApiUrl"]["Value"]["Fn::GetAtt"][1] == "ApiEndpoint"
    assert "WebSocketManagedUrl" not in outputs


def test_a_given_certificate_maps_both_apis_and_outputs_the_dns_targets(pinned_out: Path) -> None:
    api = load_templates(pinned_out, "prod")["Api"]
    assert_domains_mapped_to_both_apis(api, CERTIFICATE)
    # The DNS is the operator's: no certificate or records here, the targets are outputs.
    assert not resources(api, "AWS::CertificateManager::Certificate")
    assert not resources(api, "AWS::Route53::RecordSet")
    names = domain_names(api)
    for ident, domain in (("WebSocket", WS_DOMAIN), ("Http", HTTP_DOMAIN)):
        target = api["Outputs"][f"{ident}DomainTarget"]["Value"]
        assert target == {"Fn::GetAtt": [names[domain]["_id"], "RegionalDomainName"]}


def test_a_hosted_zone_gets_a_dns_validated_certificate_and_alias_records(zone_out: Path) -> None:
    api = load_templates(zone_out, "dev")["Api"]
    (cert_id, certificate), *more = resources(api, "AWS::CertificateManager::Certificate").items()
    assert not more
    props = certificate["Properties"]
    assert props["ValidationMethod"] == "DNS"
    assert {props["DomainName"], *props["SubjectAlternativeNames"]} == {WS_DOMAIN, HTTP_DOMAIN}
    assert {o["DomainName"]: o["HostedZoneId"] for o in props["DomainValidationOptions"]} == {
        WS_DOMAIN: ZONE_ID,
        HTTP_DOMAIN: ZONE_ID,
    }
    assert_domains_mapped_to_both_apis(api, {"Ref": cert_id})
    names = domain_names(api)
    records = [r["Properties"] for r in resources(api, "AWS::Route53::RecordSet").values()]
    assert sorted((r["Name"], r["Type"]) for r in records) == sorted(
        (f"{d}.", t) for d in (WS_DOMAIN, HTTP_DOMAIN) for t in ("A", "AAAA")
    )
    for record in records:
        assert record["HostedZoneId"] == ZONE_ID
        domain_id = names[record["Name"].rstrip(".")]["_id"]
        assert record["AliasTarget"] == {
            "DNSName": {"Fn::GetAtt": [domain_id, "RegionalDomainName"]},
            "HostedZoneId": {"Fn::GetAtt": [domain_id, "RegionalHostedZoneId"]},
        }
    assert not any(key.endswith("DomainTarget") for key in api["Outputs"])


# --- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"account": "12345"}, "12 digits"),
        ({"account": ACCOUNT}, "both account and region"),
        ({"region": REGION}, "both account and region"),
        ({"account": ACCOUNT, "region": "Ireland"}, "not a region name"),
        ({"account": ACCOUNT, "region": REGION}, "availabilityZones"),
        ({"account": ACCOUNT, "region": REGION, "availabilityZones": "eu-west-1a,us-east-1b"}, "not a zone"),
        ({"availabilityZones": ",".join(ZONES)}, "only with account and region"),
        ({"wsDomainName": WS_DOMAIN}, "exactly one of certificateArn or hostedZoneId"),
        (
            {"wsDomainName": WS_DOMAIN, "certificateArn": CERTIFICATE, "hostedZoneId": ZONE_ID},
            "exactly one of",
        ),
        ({"wsDomainName": "Chat.Example.com", "certificateArn": CERTIFICATE}, "lower-case DNS name"),
        (
            {"wsDomainName": WS_DOMAIN, "httpDomainName": WS_DOMAIN, "certificateArn": CERTIFICATE},
            "must differ",
        ),
        ({"wsDomainName": WS_DOMAIN, "certificateArn": "arn:aws:iam::1:role/x"}, "no ACM certificate ARN"),
        (
            {
                "account": ACCOUNT,
                "region": "us-east-1",
                "availabilityZones": "us-east-1a,us-east-1b",
                "wsDomainName": WS_DOMAIN,
                "certificateArn": CERTIFICATE,
            },
            "its own region",
        ),
        ({"wsDomainName": WS_DOMAIN, "hostedZoneId": ZONE_ID}, "go together"),
        (
            {"wsDomainName": "chat.other.org", "hostedZoneId": ZONE_ID, "hostedZoneName": ZONE_NAME},
            "not in the hosted zone",
        ),
        ({"certificateArn": CERTIFICATE}, "need wsDomainName or httpDomainName"),
    ],
)
def test_environment_placement_and_domains_are_validated(overrides: dict[str, str], message: str) -> None:
    from infra.config import ConfigError, from_mapping
    from tests.infra.conftest import cdk_context

    context = cdk_context(**{f"chatflow:{key}": value for key, value in overrides.items()})
    with pytest.raises(ConfigError, match=message):
        from_mapping(context)


def test_only_one_custom_domain_is_fine() -> None:
    from infra.config import from_mapping
    from tests.infra.conftest import cdk_context

    config = from_mapping(
        cdk_context(**{"chatflow:httpDomainName": HTTP_DOMAIN, "chatflow:certificateArn": CERTIFICATE})
    )
    assert config.domains == {"http": HTTP_DOMAIN}
