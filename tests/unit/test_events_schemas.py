"""Event schemas: registry, versioning, validation, exported JSON Schemas, sample events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from chatflow.events import schemas
from chatflow.events.consumer import parse_envelope
from chatflow.events.schemas import InvalidEvent, MessageCreated, parse_detail
from chatflow_dev.events import export_schemas, schema_documents, stale_schema_files
from infra.catalog import EVENT_RULES, FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "events" / "samples"

CONTRACT_TYPES = {
    "message.created",
    "message.edited",
    "message.deleted",
    "room.created",
    "member.joined",
    "member.left",
    "user.online",
    "user.offline",
    "user.banned",
    "connection.opened",
}


def _message(**overrides: Any) -> MessageCreated:
    fields: dict[str, Any] = {
        "room_id": uuid.uuid4(),
        "seq": 1,
        "message_id": uuid.uuid4(),
        "sender_id": uuid.uuid4(),
        "sender_handle": "alice",
        "client_message_id": "c1",
        "body": "hi @bob",
        "mentions": ["bob"],
        "created_at": datetime.now(UTC),
    }
    fields.update(overrides)
    return MessageCreated(**fields)


def test_registry_has_every_contract_event_with_a_version() -> None:
    assert set(schemas.REGISTRY) == CONTRACT_TYPES
    for detail_type, model in schemas.REGISTRY.items():
        assert model.detail_type == detail_type
        assert (detail_type, model.model_fields["version"].default) in schemas.VERSIONS


def test_detail_round_trips_through_parse_detail() -> None:
    event = _message()
    parsed = parse_detail("message.created", json.loads(json.dumps(event.detail())))
    assert parsed == event
    assert parsed.event_id == event.event_id
    assert parsed.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    ("detail_type", "mutate", "message"),
    [
        ("message.sent", lambda d: d, "unknown detail type"),
        ("message.created", lambda d: d | {"version": 2}, "unsupported version 2"),
        ("message.created", lambda d: d | {"version": "1"}, "version must be an integer"),
        ("message.created", lambda d: d | {"seq": 0}, "seq"),
        ("message.created", lambda d: d | {"mentions": ["@bob"]}, "mentions.0"),
        ("message.created", lambda d: d | {"surprise": True}, "surprise"),
        ("message.created", lambda d: {k: v for k, v in d.items() if k != "room_id"}, "room_id"),
        ("message.created", lambda d: d | {"created_at": "2026-11-25T10:00:00"}, "created_at"),
    ],
)
def test_invalid_details_are_refused(detail_type: str, mutate: Any, message: str) -> None:
    detail = mutate(_message().detail())
    with pytest.raises(InvalidEvent, match=message):
        parse_detail(detail_type, detail)


def test_ensure_valid_catches_events_built_without_validation() -> None:
    bad = MessageCreated.model_construct(**(_message().__dict__ | {"seq": -5}))
    with pytest.raises(InvalidEvent, match="seq"):
        schemas.ensure_valid(bad)


def test_exported_schema_files_are_up_to_date() -> None:
    """Fails when a model changed without `python -m chatflow_dev.events export-schemas`."""
    stale = stale_schema_files(ROOT / "events" / "schemas")
    assert stale == [], f"run `python -m chatflow_dev.events export-schemas` (stale: {stale})"


def test_stale_check_detects_changed_missing_and_extra_files(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    assert stale_schema_files(tmp_path) == []
    (tmp_path / "message.created.v1.json").write_text("{}\n")
    (tmp_path / "user.online.v1.json").unlink()
    (tmp_path / "message.exploded.v1.json").write_text("{}\n")
    assert stale_schema_files(tmp_path) == [
        "message.created.v1.json",
        "message.exploded.v1.json",
        "user.online.v1.json",
    ]


def test_exported_schema_describes_the_detail() -> None:
    doc = json.loads(schema_documents()["message.created.v1.json"])
    assert doc["x-eventbridge"] == {"source": "chatflow.chat", "detail-type": "message.created", "version": 1}
    assert doc["additionalProperties"] is False
    assert {"event_id", "room_id", "seq", "mentions", "version"} <= set(doc["required"])


# --- sample events ---------------------------------------------------------------------------


def test_every_catalog_function_has_sample_events() -> None:
    missing = [fn.name for fn in FUNCTIONS if not list((SAMPLES / fn.name).glob("*.json"))]
    assert missing == []


def _samples(function: str) -> list[Path]:
    return sorted((SAMPLES / function).glob("*.json"))


@pytest.mark.parametrize("path", _samples("notifications") + _samples("analytics"), ids=lambda p: p.stem)
def test_eventbridge_samples_are_valid_events_routed_to_their_function(path: Path) -> None:
    from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

    from local_stack.eventbridge import compile_pattern

    raw = json.loads(path.read_text())
    EventBridgeModel.model_validate(raw)
    parse_envelope(raw, expected_source="chatflow.chat")
    function = path.parent.name
    routed = {t for rule in EVENT_RULES if compile_pattern(rule.pattern).matches(raw) for t in rule.targets}
    assert function in routed


def test_api_gateway_and_queue_samples_parse_with_powertools_models() -> None:
    from aws_lambda_powertools.utilities.parser import models as m

    expected: dict[str, type[BaseModel]] = {
        "ws_connect": m.APIGatewayWebSocketConnectEventModel,
        "ws_disconnect": m.APIGatewayWebSocketDisconnectEventModel,
        "ws_default": m.APIGatewayWebSocketMessageEventModel,
        "ws_ping": m.APIGatewayWebSocketMessageEventModel,
        "ws_messages": m.APIGatewayWebSocketMessageEventModel,
        "http_api": m.APIGatewayProxyEventV2Model,
        "fanout": m.SqsModel,
        "outbox_relay": m.EventBridgeModel,
    }
    for function, model in expected.items():
        paths = _samples(function)
        assert paths, function
        for path in paths:
            model.model_validate(json.loads(path.read_text()))
    for path in _samples("authorizer"):
        raw = json.loads(path.read_text())
        if "routeArn" in raw:
            m.ApiGatewayAuthorizerRequestV2.model_validate(raw)
        else:  # WebSocket REQUEST authorizer (no Powertools model for it)
            assert raw["type"] == "REQUEST"
            assert raw["methodArn"].endswith("/$connect")
            assert raw["queryStringParameters"]["token"]
            assert raw["requestContext"]["eventType"] == "CONNECT"
